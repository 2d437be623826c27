// Counters the data plane bumps and the admin port renders. Relaxed atomics only: a counter is
// never used to synchronise anything, and every worker writes them without locks.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "admin/metrics.hpp"
#include "http/parser.hpp"

namespace sluice::proxy {

using Counter = std::atomic<std::uint64_t>;

inline void bump(Counter& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }

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

// Per route label; index by status class 1xx..5xx (0..4).
struct RouteStats {
  explicit RouteStats(std::string l) : label(std::move(l)) {}
  const std::string& key() const { return label; }
  const std::string label;
  std::array<Counter, 5> by_class{};
  void count(int status) {
    int cls = status / 100 - 1;
    if (cls >= 0 && cls < 5) {
      bump(by_class[static_cast<std::size_t>(cls)]);
    }
  }
};

struct ClusterStats {
  explicit ClusterStats(std::string n) : name(std::move(n)) {}
  const std::string& key() const { return name; }
  const std::string name;
  Histogram upstream_latency;
  Counter connect_failures{0};
  Counter retries{0};
  Counter upstream_resets{0};
};

// Local (agent-generated) replies, by the status the agent answered with.
enum class LocalReply : std::uint8_t {
  k400, k404, k408, k413, k414, k431, k502, k503, k504, kCount
};
int statusOf(LocalReply r);

struct GlobalStats {
  std::atomic<std::int64_t> active_connections{0};
  std::atomic<std::int64_t> active_requests{0};
  Counter connections_total{0};
  Counter requests_total{0};
  Counter upstream_connects{0};
  Counter upstream_reused{0};
  Counter upgrades{0};
  std::array<Counter, static_cast<std::size_t>(LocalReply::kCount)> local_replies{};
  std::array<Counter, 32> parse_errors{};  // by http::ParseError
  void localReply(LocalReply r) { bump(local_replies[static_cast<std::size_t>(r)]); }
};

GlobalStats& globalStats();

// sluice_requests_*, sluice_local_replies_total, connection and upstream totals.
void renderGlobalMetrics(admin::MetricsWriter& out);

// Control-thread registry that hands out the same stats object for the same label across
// snapshots, so counters survive config swaps while the route exists.
template <typename T>
class StatsRegistry {
public:
  std::shared_ptr<T> get(const std::string& key) {
    auto& slot = items_[key];
    if (!slot) {
      slot = std::make_shared<T>(key);
    }
    return slot;
  }
  // Drops entries no snapshot references (the registry holds the only reference).
  void prune() {
    std::erase_if(items_, [](const auto& kv) { return kv.second.use_count() == 1; });
  }
  const std::unordered_map<std::string, std::shared_ptr<T>>& items() const { return items_; }

  // The entries sorted by key, for stable rendering.
  std::vector<const T*> sorted() const {
    std::vector<const T*> out;
    out.reserve(items_.size());
    for (const auto& [key, item] : items_) {
      out.push_back(item.get());
    }
    std::sort(out.begin(), out.end(), [](const T* a, const T* b) { return a->key() < b->key(); });
    return out;
  }

private:
  std::unordered_map<std::string, std::shared_ptr<T>> items_;
};

// sluice_requests_total by route and status class.
void renderRouteMetrics(admin::MetricsWriter& out, const StatsRegistry<RouteStats>& routes);
// Upstream latency, connect failures and retries by cluster.
void renderClusterMetrics(admin::MetricsWriter& out, const StatsRegistry<ClusterStats>& clusters);

}  // namespace sluice::proxy
