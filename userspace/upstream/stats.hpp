// Counters of the upstream side: per cluster (latency, connect failures, retries, resets) and
// process-wide (connections opened, requests on pooled connections).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "admin/metrics.hpp"
#include "common/stats.hpp"

namespace sluice::upstream {

// Upstream latency: time from the request head sent to the response head received.
class Histogram {
public:
  static constexpr std::array<double, 14> kBoundsSeconds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  void observe(std::chrono::nanoseconds d);
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sumSeconds() const { return static_cast<double>(sum_ns_.load()) / 1e9; }

private:
  std::array<Counter, kBoundsSeconds.size()> buckets_{};  // non-cumulative
  Counter count_{0};
  Counter sum_ns_{0};
};

// A gauge with a ceiling, shared by every worker: a circuit breaker's count.
class Gauge {
public:
  // Takes one if the gauge is below `max`; false (and nothing taken) at the ceiling.
  bool tryTake(std::uint32_t max) {
    std::uint32_t n = value_.load(std::memory_order_relaxed);
    while (n < max) {
      if (value_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  void give() { value_.fetch_sub(1, std::memory_order_relaxed); }
  std::uint32_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::uint32_t> value_{0};
};

struct ClusterStats {
  explicit ClusterStats(std::string n) : name(std::move(n)) {}
  const std::string& key() const { return name; }
  const std::string name;
  Histogram upstream_latency;
  Counter connect_failures{0};
  Counter retries{0};
  Counter upstream_resets{0};
  // Circuit breakers, agent-wide: upstream connections busy with a request (or a TCP route's
  // flow), and requests waiting for a new connection; each over its limit is a 503 at once.
  Gauge busy;
  Gauge pending;
  Counter overflow_connections{0};
  Counter overflow_pending{0};
};

struct UpstreamStats {
  Counter connects{0};  // connections opened
  Counter reused{0};    // requests sent on a pooled connection
};
UpstreamStats& stats();

// sluice_upstream_connections_total and sluice_upstream_reused_total.
void renderMetrics(admin::MetricsWriter& out);
// Upstream latency, connect failures and retries by cluster.
void renderClusterMetrics(admin::MetricsWriter& out, const StatsRegistry<ClusterStats>& clusters);

}  // namespace sluice::upstream
