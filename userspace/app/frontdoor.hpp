// The agent's side of the XDP front door: loads and attaches it at startup (--xdp-interfaces),
// keeps its maps equal to what the current snapshot asks for (scope from the listeners, deny list
// from the --deny-source-ranges ConfigMap) and renders sluice_xdp_packets_total. With no
// interfaces it does nothing at all.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/pages.hpp"
#include "app/flags.hpp"
#include "bpf/frontdoor.hpp"
#include "common/cidr.hpp"
#include "k8s/store.hpp"
#include "model/desired_state.hpp"
#include "proxy/snapshot.hpp"

namespace sluice::app {

// CIDRs of every value of a deny ConfigMap's data: one a line, '#' starts a comment, blank lines
// skipped. Bad entries are reported in `problems` ("key \"x\" line 3: bad CIDR ...") and skipped.
std::vector<net::Cidr> parseDenyRanges(const k8s::ConfigMap& cm,
                                       std::vector<std::string>& problems);

// The scope entries for the agent's listeners: HTTP on `http`, TCP routes on their ports (same
// address, flagged ALLOWLIST/ACL when the route has source ranges). An unspecified address is the
// family's wildcard; "::" covers IPv4 too (dual stack).
std::vector<bpf::ScopeEntry> listenerScope(
    const boost::asio::ip::tcp::endpoint& http,
    const std::optional<boost::asio::ip::tcp::endpoint>& https, const model::DesiredState* desired);

// The per-port ACL entries of the TCP routes' source ranges (sluice.dev/allow-source-ranges and
// deny-source-ranges on a route's Service). The kernel picks the longest prefix, while a deny
// range wins over an allow range that contains it (model::SourceRanges): an allow range inside a
// deny range is left out, so the deny range covers it.
std::vector<bpf::AclEntry> tcpRouteAcl(const model::DesiredState& desired);

class FrontdoorControl {
public:
  // Loads, writes the rate settings, applies the current store and snapshot and attaches (when
  // interfaces are given); registers metrics and state on `pages`.
  Result<void> start(const AgentConfig& config, admin::Pages& pages, const k8s::Store& store,
                     const std::shared_ptr<const proxy::Snapshot>& snap);
  // Reconciles scope and deny list with this store and snapshot.
  void apply(const k8s::Store& store, const std::shared_ptr<const proxy::Snapshot>& snap);
  // Detaches (unless --xdp-detach-on-exit=false); maps stay pinned.
  void stop();

private:
  // Without the front door, TCP routes' source ranges are not enforced: say so once per change.
  void warnUnenforced(const std::shared_ptr<const proxy::Snapshot>& snap);
  void renderMetrics(admin::MetricsWriter& out) const;
  void renderState(boost::json::object& out) const;

  std::unique_ptr<bpf::Frontdoor> door_;
  XdpSettings settings_;
  boost::asio::ip::tcp::endpoint http_;
  std::optional<boost::asio::ip::tcp::endpoint> https_;
  std::string last_problems_;
  std::string unenforced_ports_;  // TCP route ports with ranges last warned about
};

}  // namespace sluice::app
