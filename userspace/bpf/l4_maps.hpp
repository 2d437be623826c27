// The L4 fast path's maps (bpf/xdp_l4.bpf.c) by fd: configuration, services, backends, Maglev
// tables, flows and counters. Shared by the agent (L4FastPath) and ingressctl, which opens the
// pinned maps itself; nothing here loads or attaches a program.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bpf/abi.hpp"
#include "common/result.hpp"

namespace sluice::bpf {

// Fds of the fast path's maps; not owned.
struct L4MapFds {
  int config = -1;
  int services = -1;
  int backends = -1;
  int ring = -1;
  int flows = -1;
  int rev = -1;
  int snat = -1;
  int stats = -1;
};

Result<void> writeL4Config(int fd, const sluice_l4_config& config);
Result<sluice_l4_config> readL4Config(int fd);

// One service entry as stored.
struct L4ServiceEntry {
  sluice_l4_svc_key key{};
  sluice_l4_service value{};
};
// Makes the services map hold exactly `want`; returns how many entries changed.
Result<std::size_t> reconcileL4Services(int fd, const std::vector<L4ServiceEntry>& want);
Result<std::vector<L4ServiceEntry>> listL4Services(int fd);

// Writes backend slot `id` (a zeroed value clears it).
Result<void> writeL4Backend(int fd, std::uint32_t id, const sluice_l4_backend& backend);
// Every slot whose state is not UNUSED, by id.
Result<std::map<std::uint32_t, sluice_l4_backend>> listL4Backends(int fd);

// Builds a new table array holding `table` and swaps it into slot `service_id` of the ring in
// one update: a lookup sees the old table or the new one, never a mix.
Result<void> swapMaglevTable(int ring_fd, std::uint32_t service_id,
                             const std::vector<std::uint32_t>& table);
// Removes service_id's table (ENOENT-tolerant).
Result<void> dropMaglevTable(int ring_fd, std::uint32_t service_id);
// The table in slot `service_id` (opening it by id needs CAP_SYS_ADMIN); empty when none.
Result<std::vector<std::uint32_t>> readMaglevTable(int ring_fd, std::uint32_t service_id);

// Makes the SNAT map hold exactly `want` (ifindex -> IPv4, network order).
Result<void> reconcileSnat(int fd, const std::map<std::uint32_t, std::uint32_t>& want);

// One flow as stored.
struct L4FlowEntry {
  sluice_l4_flow_key key{};
  sluice_l4_flow value{};
};
Result<std::vector<L4FlowEntry>> listL4Flows(int fd);
// Deletes flows (and their reverse entries) for which `drop` is true; returns how many.
template <typename Pred>
Result<std::size_t> dropL4Flows(L4MapFds fds, Pred drop);
Result<void> deleteL4Flow(L4MapFds fds, const L4FlowEntry& flow);

// Per-reason packet counts summed over CPUs, indexed by enum sluice_l4_reason.
using L4Counters = std::array<std::uint64_t, SLUICE_L4_REASON_COUNT>;
Result<L4Counters> readL4Counters(int stats_fd);

// "10.0.0.1" from a network-order IPv4 address; and back (error on anything else).
std::string ipv4Text(std::uint32_t be_addr);
Result<std::uint32_t> parseIpv4(const std::string& text);

template <typename Pred>
Result<std::size_t> dropL4Flows(L4MapFds fds, Pred drop) {
  SLUICE_TRY(const auto flows, listL4Flows(fds.flows));
  std::size_t n = 0;
  for (const auto& f : flows) {
    if (drop(f)) {
      SLUICE_CHECK(deleteL4Flow(fds, f));
      ++n;
    }
  }
  return n;
}

}  // namespace sluice::bpf
