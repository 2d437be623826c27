// The immutable unit of configuration the workers serve from. The control thread builds a new
// Snapshot per DesiredState and publishes it; each request pins one snapshot for its whole life,
// so a swap never changes a request midway and never drops a connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "lb/balancer.hpp"
#include "model/desired_state.hpp"
#include "proxy/config.hpp"
#include "proxy/stats.hpp"
#include "proxy/tls_table.hpp"
#include "router/route_table.hpp"
#include "upstream/stats.hpp"

namespace sluice::proxy {

inline constexpr std::uint32_t kNoTcpRoute = UINT32_MAX;

// A cluster's circuit-breaker limits: its Service's annotations, else the agent's defaults.
struct BreakerLimits {
  std::uint32_t connections;
  std::uint32_t pending;
};
inline BreakerLimits breakerLimits(const model::ClusterOptions& options, const ProxyConfig& cfg) {
  return {
      options.max_connections != 0 ? options.max_connections : cfg.cluster_max_connections,
      options.max_pending_requests != 0 ? options.max_pending_requests : cfg.cluster_max_pending};
}

struct Snapshot {
  std::uint64_t generation = 0;
  std::shared_ptr<const model::DesiredState> desired;
  std::shared_ptr<const router::RouteTable> routes;
  std::vector<std::shared_ptr<lb::Balancer>> balancers;                // by cluster index
  std::vector<std::shared_ptr<upstream::ClusterStats>> cluster_stats;  // by cluster index
  std::vector<model::ClusterOptions> cluster_options;                  // by cluster index
  std::vector<std::shared_ptr<RouteStats>> route_stats;                // by route index
  std::vector<std::pair<std::uint16_t, std::uint32_t>> tcp_routes;     // port → cluster, by port
  std::shared_ptr<const TlsTable> tls;  // null: no HTTPS (no certificate at all)

  std::uint32_t tcpCluster(std::uint16_t port) const {
    for (const auto& [p, cluster] : tcp_routes) {
      if (p == port) {
        return cluster;
      }
    }
    return kNoTcpRoute;
  }
};

// Single writer (control thread), many readers (workers). Readers keep a cached pointer and only
// take the atomic shared_ptr load when the generation moved, so the hot path is one relaxed load.
class SnapshotHolder {
public:
  void publish(std::shared_ptr<const Snapshot> s) {
    const std::uint64_t gen = s->generation;
    current_.store(std::move(s), std::memory_order_release);
    generation_.store(gen, std::memory_order_release);
  }
  std::shared_ptr<const Snapshot> load() const { return current_.load(std::memory_order_acquire); }
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
  std::atomic<std::uint64_t> generation_{0};
};

}  // namespace sluice::proxy
