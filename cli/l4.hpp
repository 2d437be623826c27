// `ingressctl backends`: the XDP L4 fast path's services (TCP routes), their backends with state,
// Maglev table fill and live flow counts, read from the pinned maps (bpf/xdp_l4.bpf.c). Also the
// fast path's flows for `ingressctl flows` (strategy "xdp").
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "bpf/l4_maps.hpp"
#include "common/result.hpp"
#include "flows.hpp"
#include "render.hpp"

namespace sluice::cli {

struct BackendRow {
  std::uint16_t port = 0;  // the TCP route's listener port
  std::uint32_t service_id = 0;
  std::string backend;  // "10.0.0.1:5432"; "-" for a service without backends
  std::uint32_t backend_id = 0;
  std::string state;        // active, draining, local
  std::uint64_t slots = 0;  // Maglev slots naming it
  std::uint64_t table = 0;  // the service's table size
  std::uint64_t flows = 0;  // live flow entries naming it
};

struct BackendsModel {
  std::vector<BackendRow> rows;
  bpf::L4Counters counters{};
};

// From the maps pinned in `pin_dir`; reading the tables needs CAP_SYS_ADMIN (map ids).
Result<BackendsModel> collectBackends(const std::string& pin_dir);
Records backendRecords(const BackendsModel& model);
void renderBackends(const BackendsModel& model, Output output, std::ostream& out);

// Appends the fast path's flows (strategy "xdp"); nothing when its maps are not pinned.
void addXdpFlows(const std::string& pin_dir, FlowsModel& model);
// One flow as a row (pure; `now_ns` on the bpf_ktime_get_ns clock).
FlowRow xdpFlowRow(const bpf::L4FlowEntry& flow, std::uint64_t now_ns);

}  // namespace sluice::cli
