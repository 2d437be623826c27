// The front door's maps (bpf/xdp_frontdoor.bpf.c) by fd: deny lists, scope, ACLs, counters and
// the rate-limit map's busiest sources. Shared by the agent's reconcile (Frontdoor) and
// ingressctl's `deny` and `xdp` commands, which open the pinned maps themselves; nothing here
// loads or attaches a program.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bpf/abi.hpp"
#include "common/cidr.hpp"
#include "common/result.hpp"

namespace sluice::bpf {

// One deny-list entry as stored.
struct DenyEntry {
  net::Cidr range;
  std::uint32_t origin = 0;  // SLUICE_XDP_ORIGIN_*
};

// What a reconcile changed.
struct ReconcileCount {
  std::size_t added = 0;
  std::size_t removed = 0;
  std::size_t kept = 0;
};

// Fds of the two deny tries (IPv4, IPv6); not owned.
struct DenyMaps {
  int v4 = -1;
  int v6 = -1;
};

// "denied source" keys of both families, read back as ranges.
Result<std::vector<DenyEntry>> listDeny(DenyMaps maps);
// Adds (or re-labels) one range.
Result<void> addDeny(DenyMaps maps, const net::Cidr& range, std::uint32_t origin);
// Removes one range (exactly that prefix). ENOENT when absent.
Result<void> deleteDeny(DenyMaps maps, const net::Cidr& range);
// Makes the tries hold exactly `want` (labelled `origin`): adds the new, removes the stale,
// including emergency entries the list does not name.
Result<ReconcileCount> reconcileDeny(DenyMaps maps, const std::vector<net::Cidr>& want,
                                     std::uint32_t origin);

// One listener the front door judges.
struct ScopeEntry {
  sluice_xdp_scope_key key{};
  sluice_xdp_scope value{};
};
// Key for `address` (empty: every address of `v6`'s family) and a host-order port.
sluice_xdp_scope_key scopeKey(bool v6, const std::array<std::uint8_t, 16>* address,
                              std::uint16_t port);
// Makes the scope map hold exactly `want`.
Result<ReconcileCount> reconcileScope(int fd, const std::vector<ScopeEntry>& want);
Result<std::vector<ScopeEntry>> listScope(int fd);

// One per-port ACL entry (TCP routes).
struct AclEntry {
  std::uint16_t port = 0;  // host order
  net::Cidr range;
  std::uint32_t action = 0;  // SLUICE_XDP_ACL_*
  bool operator==(const AclEntry&) const = default;
};
// Makes the ACL tries (IPv4, IPv6) hold exactly `want`.
Result<ReconcileCount> reconcileAcl(DenyMaps maps, const std::vector<AclEntry>& want);

// Per-reason packet counts summed over CPUs, indexed by enum sluice_xdp_reason.
using XdpCounters = std::array<std::uint64_t, SLUICE_XDP_REASON_COUNT>;
Result<XdpCounters> readXdpCounters(int stats_fd);

// A source of the rate-limit map.
struct SourceStats {
  net::Cidr source;  // /32 for IPv4, /64 for IPv6 (the bucket)
  sluice_xdp_bucket bucket{};
};
// The `limit` sources with most dropped then most SYNs.
Result<std::vector<SourceStats>> topSources(int rate_fd, std::size_t limit);

// The configuration entry.
Result<void> writeXdpConfig(int cfg_fd, const sluice_xdp_config& config);
Result<sluice_xdp_config> readXdpConfig(int cfg_fd);

}  // namespace sluice::bpf
