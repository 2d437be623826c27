// What the XDP L4 fast path's maps should hold for one snapshot: a service per TCP route, its
// cluster's IPv4 endpoints as backends, and a Maglev table over the ready ones. Pure; the agent
// (app/l4.cpp) writes the plan into the maps.
//
// Ids are this node's business (map slots), kept stable across snapshots so a flow's backend_id
// keeps naming its backend; the Maglev *choice* depends only on endpoint keys, so every node
// picks the same backend for a flow whatever ids it uses.
//
// Endpoint states: ready → ACTIVE, in the table. Not ready (the cluster fell back to serving but
// terminating endpoints) → DRAINING: keeps its flows, gets no new ones. Gone from the cluster →
// DRAINING until no flow uses it (drain policy, see releaseDrained), or dropped at once (reset
// policy: the program ends the flows on their next packet). An endpoint on one of this node's own
// addresses stays in the table (so the choice matches other nodes) but is LOCAL: the relay serves
// flows that pick it. IPv6 endpoints are left out (the fast path is IPv4 only).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "lb/maglev.hpp"
#include "model/desired_state.hpp"

namespace sluice::lb {

enum class RemovedBackend { kDrain, kReset };
enum class L4BackendState { kActive, kDraining, kLocal };

struct L4PlanOptions {
  std::uint32_t table_size = kDefaultMaglevSize;
  RemovedBackend removed = RemovedBackend::kDrain;
  std::set<std::string> local_addresses;  // this node's IPv4 addresses
  std::uint32_t max_services = 1024;
  std::uint32_t max_backends = 16384;
};

struct L4BackendPlan {
  std::uint32_t id = 0;
  std::uint32_t service_id = 0;
  std::string address;  // IPv4 literal
  std::uint16_t port = 0;
  L4BackendState state = L4BackendState::kActive;
  bool operator==(const L4BackendPlan&) const = default;
};

struct L4ServicePlan {
  std::uint32_t id = 0;
  std::uint16_t port = 0;  // the TCP route's listener port
  std::string cluster;
  std::vector<std::uint32_t> table;  // Maglev slots → backend ids; empty: no ready backend
  std::size_t ready = 0;             // backends in the table
  std::size_t skipped_v6 = 0;        // IPv6 endpoints the fast path leaves to the relay
};

struct L4Plan {
  std::vector<L4ServicePlan> services;              // by port
  std::map<std::uint32_t, L4BackendPlan> backends;  // by id, draining ones included
  std::vector<std::uint32_t> freed_backends;        // ids to clear in the map
  std::vector<std::uint32_t> freed_services;        // service ids whose table to drop
};

class L4Planner {
public:
  explicit L4Planner(L4PlanOptions options) : options_(std::move(options)) {}

  // The plan for `state`; errors only for exhausted id space.
  Result<L4Plan> plan(const model::DesiredState& state);
  // Draining backends not in `in_use` (ids some flow still names) are forgotten; their ids are
  // returned so the caller clears their slots.
  std::vector<std::uint32_t> releaseDrained(const std::set<std::uint32_t>& in_use);
  const L4PlanOptions& options() const { return options_; }

private:
  Result<std::uint32_t> backendId(const std::string& key);
  Result<std::uint32_t> serviceId(std::uint16_t port);

  L4PlanOptions options_;
  std::map<std::uint16_t, std::uint32_t> service_ids_;  // port → id
  std::map<std::string, std::uint32_t> backend_ids_;    // "port/addr:port" → id
  std::map<std::uint32_t, L4BackendPlan> draining_;     // removed, still draining
  std::map<std::uint32_t, L4BackendPlan> last_;         // the last plan's live backends
};

}  // namespace sluice::lb
