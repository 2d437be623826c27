#include "app/frontdoor.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/log.hpp"

namespace sluice::app {
namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) {
    return "";
  }
  return std::string(s.substr(b, s.find_last_not_of(" \t\r") - b + 1));
}

// GCRA settings from a rate per second and a burst (0 = the rate, at least 1).
void setRate(double rate, std::uint32_t burst, __u64& interval, __u32& out) {
  interval = rate > 0 ? static_cast<std::uint64_t>(std::llround(1e9 / rate)) : 0;
  out = burst != 0 ? burst : std::max<std::uint32_t>(1, static_cast<std::uint32_t>(rate));
}

sluice_xdp_config configOf(const XdpSettings& s, bool syn_proxy) {
  sluice_xdp_config c{};
  setRate(s.syn_rate_per_source, s.syn_burst, c.syn_interval_ns, c.syn_burst);
  setRate(s.packet_rate_per_source, s.packet_burst, c.pkt_interval_ns, c.pkt_burst);
  c.flags = syn_proxy ? SLUICE_XDP_CFG_F_SYNCOOKIE : 0;
  return c;
}

void addListener(std::vector<bpf::ScopeEntry>& out, const boost::asio::ip::address& address,
                 std::uint16_t port, std::uint32_t kind, std::uint32_t flags = 0) {
  if (address.is_unspecified()) {
    out.push_back({bpf::scopeKey(false, nullptr, port), {kind, flags}});
    if (address.is_v6()) {  // a dual-stack "::" listener takes IPv4 too
      out.push_back({bpf::scopeKey(true, nullptr, port), {kind, flags}});
    }
    return;
  }
  std::array<std::uint8_t, 16> bytes{};
  if (address.is_v4()) {
    const auto b = address.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  } else {
    bytes = address.to_v6().to_bytes();
  }
  out.push_back({bpf::scopeKey(address.is_v6(), &bytes, port), {kind, flags}});
}

std::uint32_t aclFlags(const model::SourceRanges& s) {
  return (s.allow_listed ? SLUICE_XDP_SCOPE_F_ALLOWLIST : 0u) |
         (s.deny.empty() ? 0u : SLUICE_XDP_SCOPE_F_ACL);
}

bool covers(const net::Cidr& outer, const net::Cidr& inner) {
  return outer.v6 == inner.v6 && outer.prefix <= inner.prefix && outer.contains(inner.bytes.data());
}

}  // namespace

std::vector<net::Cidr> parseDenyRanges(const k8s::ConfigMap& cm,
                                       std::vector<std::string>& problems) {
  std::vector<net::Cidr> out;
  for (const auto& [key, value] : cm.data) {
    std::istringstream lines(value);
    std::string line;
    for (int n = 1; std::getline(lines, line); ++n) {
      const std::string entry = trim(line.substr(0, line.find('#')));
      if (entry.empty()) {
        continue;
      }
      auto cidr = net::parseCidr(entry);
      if (!cidr) {
        problems.push_back("key \"" + key + "\" line " + std::to_string(n) + ": " +
                           cidr.error().message());
        continue;
      }
      if (std::find(out.begin(), out.end(), *cidr) == out.end()) {
        out.push_back(*cidr);
      }
    }
  }
  return out;
}

std::vector<bpf::ScopeEntry> listenerScope(
    const boost::asio::ip::tcp::endpoint& http,
    const std::optional<boost::asio::ip::tcp::endpoint>& https,
    const model::DesiredState* desired) {
  std::vector<bpf::ScopeEntry> out;
  addListener(out, http.address(), http.port(), SLUICE_XDP_KIND_HTTP);
  if (https) {
    addListener(out, https->address(), https->port(), SLUICE_XDP_KIND_HTTPS);
  }
  if (desired != nullptr) {
    for (const auto& route : desired->tcp_routes) {
      addListener(out, http.address(), route.port, SLUICE_XDP_KIND_TCP, aclFlags(route.sources));
    }
  }
  return out;
}

std::vector<bpf::AclEntry> tcpRouteAcl(const model::DesiredState& desired) {
  std::vector<bpf::AclEntry> out;
  for (const auto& route : desired.tcp_routes) {
    const auto& deny = route.sources.deny.ranges();
    for (const net::Cidr& c : route.sources.allow.ranges()) {
      if (std::none_of(deny.begin(), deny.end(),
                       [&](const net::Cidr& d) { return covers(d, c); })) {
        out.push_back({route.port, c, SLUICE_XDP_ACL_ALLOW});
      }
    }
    for (const net::Cidr& c : deny) {
      out.push_back({route.port, c, SLUICE_XDP_ACL_DENY});
    }
  }
  return out;
}

Result<void> FrontdoorControl::start(const AgentConfig& config, admin::Pages& pages,
                                     const k8s::Store& store,
                                     const std::shared_ptr<const proxy::Snapshot>& snap) {
  settings_ = config.xdp;
  http_ = config.listen_http;
  https_ = config.listen_https;
  if (!settings_.enabled()) {
    warnUnenforced(snap);
    return success();
  }
  auto log = log::get("xdp");
  SLUICE_TRY(const bpf::XdpMode mode, bpf::parseXdpMode(settings_.mode));
  SLUICE_TRY(door_, bpf::Frontdoor::open({.pin_root = config.bpf_pin_dir,
                                          .syn_proxy = settings_.syn_proxy,
                                          .detach_on_exit = settings_.detach_on_exit}));
  if (!door_->synProxyNote().empty()) {
    log->warn("{}", door_->synProxyNote());
  }
  SLUICE_CHECK(bpf::writeXdpConfig(door_->configFd(), configOf(settings_, door_->synProxy())));
  apply(store, snap);  // maps first: a restarted agent's program must not lose the deny list
  for (const auto& ifname : settings_.interfaces) {
    SLUICE_TRY(const bpf::XdpAttachment a, door_->attach(ifname, mode));
    log->info("front door on {} ({} mode, program id {}{})", a.ifname, a.mode, a.prog_id,
              door_->synProxy() ? ", SYN cookies" : "");
  }
  pages.addMetrics([this](admin::MetricsWriter& out) { renderMetrics(out); });
  pages.addState([this](boost::json::object& out) { renderState(out); });
  return success();
}

void FrontdoorControl::apply(const k8s::Store& store,
                             const std::shared_ptr<const proxy::Snapshot>& snap) {
  if (!door_) {
    warnUnenforced(snap);
    return;
  }
  auto log = log::get("xdp");
  const auto scope = listenerScope(http_, https_, snap ? snap->desired.get() : nullptr);
  // ACL entries before the scope flags that make the program consult them.
  const auto acl =
      snap && snap->desired ? tcpRouteAcl(*snap->desired) : std::vector<bpf::AclEntry>{};
  if (auto n = bpf::reconcileAcl(door_->aclMaps(), acl); !n) {
    log->error("{}", n.error().message());
  }
  if (auto n = bpf::reconcileScope(door_->scopeFd(), scope); !n) {
    log->error("{}", n.error().message());
  }
  std::vector<std::string> problems;
  std::vector<net::Cidr> deny;
  if (!settings_.deny_source_ranges.empty()) {
    auto it = store.configMaps().find(settings_.deny_source_ranges);
    if (it == store.configMaps().end()) {
      problems.push_back("not found; no source is denied");
    } else {
      deny = parseDenyRanges(it->second, problems);
    }
  }
  std::string joined;
  for (const auto& p : problems) {
    joined += (joined.empty() ? "" : "; ") + p;
  }
  if (joined != last_problems_ && !joined.empty()) {
    log->warn("ConfigMap {}: {} (the rest is applied)", settings_.deny_source_ranges, joined);
  }
  last_problems_ = joined;
  auto n = bpf::reconcileDeny(door_->denyMaps(), deny, SLUICE_XDP_ORIGIN_CONFIGMAP);
  if (!n) {
    log->error("{}", n.error().message());
  } else if (n->added + n->removed != 0) {
    log->info("deny list: {} added, {} removed, {} kept", n->added, n->removed, n->kept);
  }
}

void FrontdoorControl::warnUnenforced(const std::shared_ptr<const proxy::Snapshot>& snap) {
  std::string ports;
  if (snap && snap->desired) {
    for (const auto& route : snap->desired->tcp_routes) {
      if (!route.sources.empty()) {
        ports += (ports.empty() ? "" : ",") + std::to_string(route.port);
      }
    }
  }
  if (!ports.empty() && ports != unenforced_ports_) {
    log::get("xdp")->warn(
        "TCP route port(s) {}: sluice.dev/*-source-ranges are enforced by the XDP front door, "
        "which is off (--xdp-interfaces); every source can connect",
        ports);
  }
  unenforced_ports_ = ports;
}

void FrontdoorControl::stop() {
  if (door_ && settings_.detach_on_exit) {
    door_->detachAll();
  }
}

void FrontdoorControl::renderMetrics(admin::MetricsWriter& out) const {
  auto counters = bpf::readXdpCounters(door_->statsFd());
  if (!counters) {
    return;
  }
  out.family("sluice_xdp_packets_total", admin::MetricsWriter::Type::kCounter,
             "Packets the XDP front door judged, by decision (sluice_abi.h "
             "SLUICE_XDP_REASON_TABLE)");
  for (std::size_t i = 0; i < counters->size(); ++i) {
    out.sample("sluice_xdp_packets_total", {{"reason", bpf::kXdpReasonLabels[i]}}, (*counters)[i]);
  }
}

void FrontdoorControl::renderState(boost::json::object& out) const {
  boost::json::array attached;
  for (const auto& a : door_->attachments()) {
    attached.push_back({{"interface", a.ifname}, {"mode", a.mode}, {"program_id", a.prog_id}});
  }
  out["xdp"] = {{"attachments", attached}, {"syn_proxy", door_->synProxy()}};
}

}  // namespace sluice::app
