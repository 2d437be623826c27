// Counters the data plane bumps and the admin port renders. Relaxed atomics only: a counter is
// never used to synchronise anything, and every worker writes them without locks.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice {

using Counter = std::atomic<std::uint64_t>;

inline void bump(Counter& c, std::uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}

// Control-thread registry that hands out the same stats object for the same key across
// snapshots, so counters survive config swaps while the route or cluster exists. T is
// constructed from its key and exposes it as key().
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

}  // namespace sluice
