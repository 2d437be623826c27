#include "app/l4.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>

#include "bpf/frontdoor.hpp"
#include "common/log.hpp"

namespace sluice::app {
namespace {

constexpr auto kSweepEvery = std::chrono::seconds(5);

// ifindex → the interface's first IPv4 address (the SNAT source there), and every local IPv4.
struct NodeAddresses {
  std::map<std::uint32_t, std::uint32_t> by_ifindex;
  std::set<std::string> all;
};

NodeAddresses nodeAddresses() {
  NodeAddresses out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return out;
  }
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) {
      continue;
    }
    const auto addr = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr;
    out.all.insert(bpf::ipv4Text(addr));
    const std::uint32_t ifindex = ::if_nametoindex(i->ifa_name);
    if (ifindex != 0) {
      out.by_ifindex.emplace(ifindex, addr);  // the first one wins
    }
  }
  ::freeifaddrs(list);
  return out;
}

std::uint8_t abiState(lb::L4BackendState s) {
  switch (s) {
    case lb::L4BackendState::kActive:
      return SLUICE_L4_BACKEND_ACTIVE;
    case lb::L4BackendState::kDraining:
      return SLUICE_L4_BACKEND_DRAINING;
    case lb::L4BackendState::kLocal:
      break;
  }
  return SLUICE_L4_BACKEND_LOCAL;
}

// Why the fast path cannot run on these interfaces (empty: it can): native XDP everywhere.
std::string nativeEverywhere(const std::vector<std::string>& interfaces) {
  for (const auto& ifname : interfaces) {
    const int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    auto prog = ifindex > 0 ? bpf::attachedXdp(ifindex)
                            : Result<std::optional<bpf::XdpProgram>>(Error(ENODEV, ifname));
    if (!prog || !*prog) {
      return "no XDP program on " + ifname;
    }
    if ((*prog)->mode != "native") {
      return "no native XDP on " + ifname + " (" + (*prog)->mode + " mode)";
    }
  }
  return "";
}

std::uint64_t monotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

Result<void> L4Control::start(const AgentConfig& config, admin::Pages& pages,
                              const std::shared_ptr<const proxy::Snapshot>& snap) {
  settings_ = config.l4;
  auto log = log::get("l4");
  pages.addState([this](boost::json::object& out) { renderState(out); });
  pages.addMetrics([this](admin::MetricsWriter& out) { renderMetrics(out); });
  if (!settings_.enabled()) {
    inactive_reason_ = "--l4-fast-path=off";
    return success();
  }
  if (!config.xdp.enabled()) {
    inactive_reason_ = "no --xdp-interfaces (the fast path runs behind the front door)";
    return success();
  }
  if (auto why = nativeEverywhere(config.xdp.interfaces); !why.empty()) {
    inactive_reason_ = why;
    log->warn("L4 fast path off: {}; the relay serves TCP routes", why);
    return success();
  }
  const std::string pin_dir = config.bpf_pin_dir.empty() ? SLUICE_PIN_DIR : config.bpf_pin_dir;
  // --xdp-detach-on-exit=false keeps the front door for the next agent; the fast path stays
  // chained with it, so established flows survive an upgrade (the next agent's chain() replaces
  // the slot in one update and reuses the pinned flow tables).
  detach_on_exit_ = config.xdp.detach_on_exit;
  auto fast = bpf::L4FastPath::open({.pin_root = pin_dir, .unchain_on_exit = detach_on_exit_});
  if (!fast) {
    inactive_reason_ = fast.error().message();
    log->warn("L4 fast path off: {}; the relay serves TCP routes", inactive_reason_);
    return success();
  }
  fast_ = std::move(*fast);
  const NodeAddresses node = nodeAddresses();
  planner_.emplace(lb::L4PlanOptions{.table_size = settings_.maglev_table_size,
                                     .removed = settings_.removed_backend == "reset"
                                                    ? lb::RemovedBackend::kReset
                                                    : lb::RemovedBackend::kDrain,
                                     .local_addresses = node.all});
  const auto maps = fast_->maps();
  SLUICE_CHECK(bpf::reconcileSnat(maps.snat, node.by_ifindex));
  sluice_l4_config cfg{};
  cfg.idle_timeout_ns = settings_.idle_timeout_s * 1'000'000'000ULL;
  cfg.closing_timeout_ns = settings_.closing_timeout_s * 1'000'000'000ULL;
  cfg.snat_port_lo = settings_.snat_lo;
  cfg.snat_port_hi = settings_.snat_hi;
  cfg.flags = SLUICE_L4_CFG_F_ENABLED |
              (settings_.removed_backend == "reset" ? SLUICE_L4_CFG_F_RESET_REMOVED : 0);
  SLUICE_CHECK(bpf::writeL4Config(maps.config, cfg));
  apply(snap);  // tables before the chain: the first packet must find them
  const int chain = ::bpf_obj_get(bpf::pinPath(pin_dir, SLUICE_MAP_XDP_CHAIN).c_str());
  if (chain < 0) {
    inactive_reason_ = "open the front door's " SLUICE_MAP_XDP_CHAIN " map";
    fast_.reset();
    return success();
  }
  auto chained = fast_->chain(chain);
  ::close(chain);
  SLUICE_CHECK(chained);
  inactive_reason_.clear();
  log->info("L4 fast path on: Maglev {} slots, SNAT ports {}, removed backends {}",
            settings_.maglev_table_size, settings_.snat_ports, settings_.removed_backend);
  scheduleSweep();
  return success();
}

void L4Control::apply(const std::shared_ptr<const proxy::Snapshot>& snap) {
  if (!fast_ || !planner_ || !snap || !snap->desired) {
    return;
  }
  auto plan = planner_->plan(*snap->desired);
  if (!plan) {
    log::get("l4")->error("{}", plan.error().message());
    return;
  }
  if (auto r = applyPlan(*plan); !r) {
    log::get("l4")->error("{}", r.error().message());
  }
}

Result<void> L4Control::applyPlan(const lb::L4Plan& plan) {
  const auto maps = fast_->maps();
  // Backends first (a table must never name an empty slot), then tables, then services.
  for (const auto& [id, b] : plan.backends) {
    sluice_l4_backend v{};
    SLUICE_TRY(v.addr, bpf::parseIpv4(b.address));
    v.port = htons(b.port);
    v.state = abiState(b.state);
    v.service_id = b.service_id;
    SLUICE_CHECK(bpf::writeL4Backend(maps.backends, id, v));
  }
  std::vector<bpf::L4ServiceEntry> services;
  for (const auto& s : plan.services) {
    if (!s.table.empty()) {
      SLUICE_CHECK(bpf::swapMaglevTable(maps.ring, s.id, s.table));
    }
    bpf::L4ServiceEntry e{};
    e.key.port = htons(s.port);
    e.key.proto = IPPROTO_TCP;
    e.value = {s.id, SLUICE_L4_SVC_F_FAST, static_cast<std::uint32_t>(s.table.size()),
               static_cast<std::uint32_t>(s.ready)};
    services.push_back(e);
  }
  SLUICE_TRY(const std::size_t changed, bpf::reconcileL4Services(maps.services, services));
  for (std::uint32_t id : plan.freed_services) {
    SLUICE_CHECK(bpf::dropMaglevTable(maps.ring, id));
  }
  for (std::uint32_t id : plan.freed_backends) {
    SLUICE_CHECK(bpf::writeL4Backend(maps.backends, id, sluice_l4_backend{}));
  }
  if (changed != 0 || !plan.freed_backends.empty()) {
    log::get("l4")->info("{} TCP routes on the fast path, {} backends", plan.services.size(),
                         plan.backends.size());
  }
  services_ = plan.services.size();
  backends_ = plan.backends.size();
  return success();
}

void L4Control::scheduleSweep() {
  sweep_timer_.expires_after(kSweepEvery);
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && fast_) {
      sweep();
      scheduleSweep();
    }
  });
}

// Expired flows go (the program only checks on lookup), and draining backends that no flow
// names any more free their slots.
void L4Control::sweep() {
  const auto maps = fast_->maps();
  auto cfg = bpf::readL4Config(maps.config);
  auto flows = bpf::listL4Flows(maps.flows);
  if (!cfg || !flows) {
    return;
  }
  const std::uint64_t now = monotonicNs();
  std::set<std::uint32_t> in_use;
  for (const auto& f : *flows) {
    const bool closing =
        (f.value.flags & SLUICE_L4_FLOW_F_RST) != 0 ||
        (f.value.flags & (SLUICE_L4_FLOW_F_FIN_CLIENT | SLUICE_L4_FLOW_F_FIN_BACKEND)) ==
            (SLUICE_L4_FLOW_F_FIN_CLIENT | SLUICE_L4_FLOW_F_FIN_BACKEND);
    const std::uint64_t limit = closing ? cfg->closing_timeout_ns : cfg->idle_timeout_ns;
    if (now > f.value.last_ns && now - f.value.last_ns > limit) {
      if (bpf::deleteL4Flow(maps, f)) {
        ++swept_;
      }
    } else {
      in_use.insert(f.value.backend_id);
    }
  }
  for (std::uint32_t id : planner_->releaseDrained(in_use)) {
    (void)bpf::writeL4Backend(maps.backends, id, sluice_l4_backend{});
  }
}

void L4Control::stop() {
  sweep_timer_.cancel();
  if (fast_ && detach_on_exit_) {
    fast_->unchain();
  }
}

void L4Control::renderMetrics(admin::MetricsWriter& out) const {
  // Whole-path fallback: 1 with an empty reason when chained, else 0 and why (one series).
  out.family("sluice_l4_fast_path", admin::MetricsWriter::Type::kGauge,
             "Whether the XDP L4 fast path serves TCP routes; reason says why not");
  out.sample("sluice_l4_fast_path", {{"reason", inactive_reason_}}, active() ? 1 : 0);
  if (!fast_) {
    return;
  }
  auto counters = bpf::readL4Counters(fast_->maps().stats);
  if (!counters) {
    return;
  }
  out.family("sluice_l4_packets_total", admin::MetricsWriter::Type::kCounter,
             "Packets the XDP L4 fast path saw, by decision or fallback reason (sluice_abi.h "
             "SLUICE_L4_REASON_TABLE)");
  for (std::size_t i = 0; i < counters->size(); ++i) {
    out.sample("sluice_l4_packets_total", {{"reason", bpf::kL4ReasonLabels[i]}}, (*counters)[i]);
  }
  out.counter("sluice_l4_flows_swept_total", "Expired fast-path flows the agent removed", swept_);
}

void L4Control::renderState(boost::json::object& out) const {
  out["l4"] = {{"active", active()},
               {"reason", inactive_reason_},
               {"services", services_},
               {"backends", backends_},
               {"maglev_table_size", settings_.maglev_table_size},
               {"removed_backend", settings_.removed_backend}};
}

}  // namespace sluice::app
