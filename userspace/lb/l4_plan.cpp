#include "lb/l4_plan.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace sluice::lb {
namespace {

bool isIpv4(const std::string& address) {
  in_addr a{};
  return ::inet_pton(AF_INET, address.c_str(), &a) == 1;
}

std::string endpointKey(const std::string& address, std::uint16_t port) {
  return address + ":" + std::to_string(port);
}

const model::Cluster* clusterNamed(const model::DesiredState& state, const std::string& name) {
  auto it =
      std::lower_bound(state.clusters.begin(), state.clusters.end(), name,
                       [](const model::Cluster& c, const std::string& n) { return c.name < n; });
  return it != state.clusters.end() && it->name == name ? &*it : nullptr;
}

// Smallest id in [0, limit) not in `used`.
template <typename Map>
Result<std::uint32_t> freeId(const Map& used, std::uint32_t limit, const char* what) {
  std::set<std::uint32_t> taken;
  for (const auto& [k, id] : used) {
    taken.insert(id);
  }
  for (std::uint32_t id = 0; id < limit; ++id) {
    if (!taken.contains(id)) {
      return id;
    }
  }
  return Error(ENOSPC,
               std::string("L4 fast path: more than ") + std::to_string(limit) + " " + what);
}

}  // namespace

Result<std::uint32_t> L4Planner::serviceId(std::uint16_t port) {
  if (auto it = service_ids_.find(port); it != service_ids_.end()) {
    return it->second;
  }
  SLUICE_TRY(const std::uint32_t id, freeId(service_ids_, options_.max_services, "TCP routes"));
  service_ids_[port] = id;
  return id;
}

Result<std::uint32_t> L4Planner::backendId(const std::string& key) {
  if (auto it = backend_ids_.find(key); it != backend_ids_.end()) {
    return it->second;
  }
  SLUICE_TRY(const std::uint32_t id, freeId(backend_ids_, options_.max_backends, "backends"));
  backend_ids_[key] = id;
  return id;
}

Result<L4Plan> L4Planner::plan(const model::DesiredState& state) {
  L4Plan out;
  std::map<std::uint32_t, L4BackendPlan> live;
  std::set<std::uint16_t> ports;
  for (const auto& route : state.tcp_routes) {
    ports.insert(route.port);
    SLUICE_TRY(const std::uint32_t sid, serviceId(route.port));
    L4ServicePlan svc{sid, route.port, route.cluster, {}, 0, 0};
    std::vector<MaglevBackend> ready;
    const model::Cluster* cluster = clusterNamed(state, route.cluster);
    for (const auto& ep : cluster ? cluster->endpoints : std::vector<model::Endpoint>{}) {
      if (!isIpv4(ep.address)) {
        ++svc.skipped_v6;
        continue;
      }
      const std::string key = endpointKey(ep.address, ep.port);
      SLUICE_TRY(const std::uint32_t bid, backendId(std::to_string(route.port) + "/" + key));
      L4BackendPlan b{bid, sid, ep.address, ep.port, L4BackendState::kActive};
      if (!ep.ready) {
        b.state = L4BackendState::kDraining;  // terminating: keeps flows, no new ones
      } else {
        if (options_.local_addresses.contains(ep.address)) {
          b.state = L4BackendState::kLocal;
        }
        ready.push_back({key, bid});
      }
      live[bid] = b;
      draining_.erase(bid);
    }
    svc.ready = ready.size();
    if (!ready.empty()) {
      SLUICE_TRY(svc.table, buildMaglevTable(std::move(ready), options_.table_size));
    }
    out.services.push_back(std::move(svc));
  }
  // Backends of the last plan that are gone now: drain or free.
  for (const auto& entry : last_) {
    // Named copies, not structured bindings: clang (the sanitizer build) cannot capture those.
    const auto id = entry.first;
    const L4BackendPlan& b = entry.second;
    if (live.contains(id)) {
      continue;
    }
    const std::uint32_t service = b.service_id;
    const bool service_left =
        std::none_of(out.services.begin(), out.services.end(),
                     [service](const L4ServicePlan& s) { return s.id == service; });
    if (options_.removed == RemovedBackend::kDrain && !service_left) {
      L4BackendPlan d = b;
      d.state = L4BackendState::kDraining;
      draining_[id] = d;
    } else {
      draining_.erase(id);
      out.freed_backends.push_back(id);
      std::erase_if(backend_ids_, [id](const auto& kv) { return kv.second == id; });
    }
  }
  for (auto it = service_ids_.begin(); it != service_ids_.end();) {
    if (!ports.contains(it->first)) {
      out.freed_services.push_back(it->second);
      it = service_ids_.erase(it);
    } else {
      ++it;
    }
  }
  last_ = live;
  out.backends = live;
  for (const auto& [id, d] : draining_) {
    out.backends[id] = d;
  }
  return out;
}

std::vector<std::uint32_t> L4Planner::releaseDrained(const std::set<std::uint32_t>& in_use) {
  std::vector<std::uint32_t> freed;
  for (auto it = draining_.begin(); it != draining_.end();) {
    const std::uint32_t id = it->first;
    if (in_use.contains(id) || last_.contains(id)) {
      ++it;
      continue;
    }
    freed.push_back(id);
    std::erase_if(backend_ids_, [id](const auto& kv) { return kv.second == id; });
    it = draining_.erase(it);
  }
  return freed;
}

}  // namespace sluice::lb
