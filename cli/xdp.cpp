#include "xdp.hpp"

#include <bpf/bpf.h>
#include <net/if.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "bpf/frontdoor.hpp"
#include "splice_maps.hpp"

namespace sluice::cli {
namespace {

// An owned fd of a pinned map.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

Result<Fd> openPinned(const std::string& dir, std::string_view map) {
  const std::string path = bpf::pinPath(dir, map);
  const int fd = ::bpf_obj_get(path.c_str());
  if (fd < 0) {
    return Error(
        errno,
        "open " + path + (errno == ENOENT ? " (is the agent running with --xdp-interfaces?)" : ""));
  }
  return Fd(fd);
}

std::vector<XdpAttachmentRow> sluiceAttachments() {
  std::vector<XdpAttachmentRow> rows;
  struct if_nameindex* names = ::if_nameindex();
  for (struct if_nameindex* n = names; n != nullptr && n->if_index != 0; ++n) {
    auto prog = bpf::attachedXdp(static_cast<int>(n->if_index));
    if (prog && *prog && (*prog)->ours()) {
      rows.push_back({n->if_name, (*prog)->mode, (*prog)->id, (*prog)->name});
    }
  }
  if (names != nullptr) {
    ::if_freenameindex(names);
  }
  return rows;
}

std::string ipText(bool v6, const std::uint8_t* addr) {
  net::Cidr c;
  c.v6 = v6;
  std::copy(addr, addr + (v6 ? 16 : 4), c.bytes.begin());
  c.prefix = v6 ? 128 : 32;
  const std::string t = c.text();
  return t.substr(0, t.find('/'));
}

std::string scopeAddress(const sluice_xdp_scope_key& k) {
  const bool v6 = k.family == SLUICE_XDP_FAMILY_V6;
  const std::uint8_t zero[16] = {};
  if (std::equal(k.addr, k.addr + 16, zero)) {
    return v6 ? "[::]" : "0.0.0.0";
  }
  return v6 ? "[" + ipText(true, k.addr) + "]" : ipText(false, k.addr);
}

std::string kindName(std::uint32_t kind) {
  switch (kind) {
    case SLUICE_XDP_KIND_HTTP:
      return "http";
    case SLUICE_XDP_KIND_HTTPS:
      return "https";
    case SLUICE_XDP_KIND_TCP:
      return "tcp";
  }
  return "unknown(" + std::to_string(kind) + ")";
}

std::string originName(std::uint32_t origin) {
  switch (origin) {
    case SLUICE_XDP_ORIGIN_CONFIGMAP:
      return "configmap";
    case SLUICE_XDP_ORIGIN_CLI:
      return "ingressctl";
  }
  return "unknown(" + std::to_string(origin) + ")";
}

Records attachmentRecords(const XdpModel& m) {
  Records r({"interface", "mode", "prog_id", "program"});
  for (const auto& a : m.attachments) {
    r.add({textCell(a.interface), textCell(a.mode), numberCell(a.prog_id), textCell(a.program)});
  }
  return r;
}

Records scopeRecords(const XdpModel& m) {
  Records r({"listener", "kind", "allow_list"});
  for (const auto& s : m.scope) {
    r.add({textCell(scopeAddress(s.key) + ":" + std::to_string(ntohs(s.key.port))),
           textCell(kindName(s.value.kind)),
           textCell((s.value.flags & SLUICE_XDP_SCOPE_F_ALLOWLIST) != 0 ? "yes" : "no")});
  }
  return r;
}

Records counterRecords(const XdpModel& m) {
  Records r({"reason", "packets"});
  for (std::size_t i = 0; i < m.counters.size(); ++i) {
    r.add({textCell(std::string(bpf::kXdpReasonLabels[i])), numberCell(m.counters[i])});
  }
  return r;
}

Records sourceRecords(const XdpModel& m) {
  Records r({"source", "syns", "syn_drops", "packet_drops"});
  for (const auto& s : m.top_sources) {
    r.add({textCell(s.source.text()), numberCell(s.bucket.syns), numberCell(s.bucket.syn_drops),
           numberCell(s.bucket.pkt_drops)});
  }
  return r;
}

double perSecond(std::uint64_t interval_ns) {
  return interval_ns == 0 ? 0.0 : 1e9 / static_cast<double>(interval_ns);
}

}  // namespace

Result<XdpModel> collectXdp(const std::string& pin_dir) {
  XdpModel m;
  auto opened = [&](std::string_view map) -> Result<Fd> {
    auto fd = openPinned(pin_dir, map);
    return fd ? std::move(fd) : Result<Fd>(userError(fd.error()));
  };
  SLUICE_TRY(const Fd cfg, opened(SLUICE_MAP_XDP_CONFIG));
  SLUICE_TRY(const Fd scope, opened(SLUICE_MAP_XDP_SCOPE));
  SLUICE_TRY(const Fd stats, opened(SLUICE_MAP_XDP_STATS));
  SLUICE_TRY(const Fd rate, opened(SLUICE_MAP_XDP_RATE));
  SLUICE_TRY(const Fd deny4, opened(SLUICE_MAP_XDP_DENY4));
  SLUICE_TRY(const Fd deny6, opened(SLUICE_MAP_XDP_DENY6));
  SLUICE_TRY(m.config, bpf::readXdpConfig(cfg.fd));
  SLUICE_TRY(m.scope, bpf::listScope(scope.fd));
  SLUICE_TRY(m.counters, bpf::readXdpCounters(stats.fd));
  SLUICE_TRY(m.top_sources, bpf::topSources(rate.fd, 10));
  SLUICE_TRY(const auto deny, bpf::listDeny({deny4.fd, deny6.fd}));
  m.deny_entries = deny.size();
  m.attachments = sluiceAttachments();
  return m;
}

void renderXdp(const XdpModel& m, Output output, std::ostream& out) {
  const double syn_rate = perSecond(m.config.syn_interval_ns);
  const double pkt_rate = perSecond(m.config.pkt_interval_ns);
  const bool cookies = (m.config.flags & SLUICE_XDP_CFG_F_SYNCOOKIE) != 0;
  if (output == Output::kJson) {
    boost::json::object o{{"attachments", attachmentRecords(m).array()},
                          {"syn_rate_per_source", syn_rate},
                          {"syn_burst", m.config.syn_burst},
                          {"packet_rate_per_source", pkt_rate},
                          {"packet_burst", m.config.pkt_burst},
                          {"syn_cookies", cookies},
                          {"deny_entries", m.deny_entries},
                          {"scope", scopeRecords(m).array()},
                          {"counters", counterRecords(m).array()},
                          {"top_sources", sourceRecords(m).array()}};
    printJson(out, o);
    return;
  }
  out << "Attachments:\n";
  attachmentRecords(m).printTable(out, 2);
  out << "Limits: syn " << syn_rate << "/s burst " << m.config.syn_burst << ", packets " << pkt_rate
      << "/s burst " << m.config.pkt_burst << ", syn cookies " << (cookies ? "on" : "off")
      << ", deny entries " << m.deny_entries << "\n";
  out << "Scope:\n";
  scopeRecords(m).printTable(out, 2);
  out << "Counters:\n";
  counterRecords(m).printTable(out, 2);
  out << "Top sources:\n";
  sourceRecords(m).printTable(out, 2);
}

Result<std::vector<bpf::DenyEntry>> runDeny(const std::string& pin_dir, DenyAction action,
                                            const std::string& cidr) {
  // The argument first: a typo is reported as such, not as missing maps.
  net::Cidr range;
  if (action != DenyAction::kList) {
    auto parsed = net::parseCidr(cidr);
    if (!parsed) {
      return Error(parsed.error().message());
    }
    range = *parsed;
  }
  auto d4 = openPinned(pin_dir, SLUICE_MAP_XDP_DENY4);
  auto d6 = openPinned(pin_dir, SLUICE_MAP_XDP_DENY6);
  if (!d4 || !d6) {
    return userError(d4 ? d6.error() : d4.error());
  }
  const bpf::DenyMaps maps{d4->fd, d6->fd};
  if (action != DenyAction::kList) {
    auto done = action == DenyAction::kAdd ? bpf::addDeny(maps, range, SLUICE_XDP_ORIGIN_CLI)
                                           : bpf::deleteDeny(maps, range);
    if (!done) {
      return userError(done.error());
    }
  }
  auto listed = bpf::listDeny(maps);
  return listed ? std::move(listed)
                : Result<std::vector<bpf::DenyEntry>>(userError(listed.error()));
}

void renderDeny(const std::vector<bpf::DenyEntry>& entries, Output output, std::ostream& out) {
  Records r({"cidr", "origin"});
  for (const auto& e : entries) {
    r.add({textCell(e.range.text()), textCell(originName(e.origin))});
  }
  if (output == Output::kJson) {
    printJson(out, r.array());
  } else {
    r.printTable(out);
  }
}

bool XdpCommands::parsed() const {
  return xdp->parsed() || deny->parsed();
}

int XdpCommands::run(const std::string& pin_dir, Output output,
                     int (*fail)(Output, int, const std::string&)) const {
  if (xdp->parsed()) {
    auto model = collectXdp(pin_dir);
    if (!model) {
      return fail(output, 1, model.error().context());
    }
    renderXdp(*model, output, std::cout);
    return 0;
  }
  const DenyAction action = add->parsed()   ? DenyAction::kAdd
                            : del->parsed() ? DenyAction::kDelete
                                            : DenyAction::kList;
  auto entries = runDeny(pin_dir, action, cidr);
  if (!entries) {
    return fail(output, 1, entries.error().message());
  }
  renderDeny(*entries, output, std::cout);
  return 0;
}

void addXdpCommands(CLI::App& app, XdpCommands& c) {
  c.xdp = app.add_subcommand("xdp",
                             "The XDP front door: interfaces and mode, limits, listeners in "
                             "scope, packets by decision, busiest sources");
  c.deny = app.add_subcommand(
      "deny",
      "The front door's deny list. add/del write the pinned maps directly: an emergency block "
      "that lasts until the agent's next reconcile, which removes every range its "
      "--deny-source-ranges ConfigMap does not list (add it there to keep it)");
  c.deny->require_subcommand(0, 1);
  c.list = c.deny->add_subcommand("list", "Denied ranges and who wrote them (the default)");
  c.add = c.deny->add_subcommand("add", "Deny a CIDR now (until the next reconcile)");
  c.add->add_option("cidr", c.cidr, "CIDR or address, e.g. 203.0.113.0/24")->required();
  c.del = c.deny->add_subcommand("del", "Remove exactly this CIDR (until the next reconcile)");
  c.del->add_option("cidr", c.cidr, "CIDR or address")->required();
}

}  // namespace sluice::cli
