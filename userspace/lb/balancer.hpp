// Endpoint selection over one cluster: round robin and power-of-two-choices least-request, with
// passive ejection. Pure code (atomics only, no sockets), shared by all workers.
//
// Endpoint state (in-flight count, ejection) lives in EndpointState objects owned through
// shared_ptr by every snapshot that uses the endpoint; the control thread's Registry hands out the
// same object for the same address across snapshots, so health and load survive config swaps.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/desired_state.hpp"

namespace sluice::lb {

struct EjectionPolicy {
  std::int64_t base_ns = 1'000'000'000;  // first ejection: 1 s
  std::int64_t max_ns = 30'000'000'000;  // doubling per consecutive failure, capped at 30 s
};

class EndpointState {
public:
  EndpointState(std::uint32_t id, std::string address, std::uint16_t port);

  std::uint32_t id() const { return id_; }
  const std::string& address() const { return address_; }
  std::uint16_t port() const { return port_; }
  const std::string& key() const { return key_; }  // "1.2.3.4:80" or "[::1]:80"

  bool ejected(std::int64_t now_ns) const {
    return ejected_until_ns_.load(std::memory_order_relaxed) > now_ns;
  }
  std::int64_t ejectedUntil() const { return ejected_until_ns_.load(std::memory_order_relaxed); }
  // A connect failure or reset: eject for base × 2^(consecutive failures − 1), capped.
  void recordFailure(std::int64_t now_ns, const EjectionPolicy& policy);
  // A successful exchange ends the failure streak.
  void recordSuccess() {
    if (consecutive_failures_.load(std::memory_order_relaxed) != 0) {
      consecutive_failures_.store(0, std::memory_order_relaxed);
    }
  }
  std::uint32_t consecutiveFailures() const {
    return consecutive_failures_.load(std::memory_order_relaxed);
  }

  std::int32_t active() const { return active_.load(std::memory_order_relaxed); }
  void beginRequest() { active_.fetch_add(1, std::memory_order_relaxed); }
  void endRequest() { active_.fetch_sub(1, std::memory_order_relaxed); }

private:
  const std::uint32_t id_;
  const std::string address_;
  const std::uint16_t port_;
  const std::string key_;
  std::atomic<std::int32_t> active_{0};
  std::atomic<std::int64_t> ejected_until_ns_{0};
  std::atomic<std::uint32_t> consecutive_failures_{0};
};

using EndpointPtr = std::shared_ptr<EndpointState>;

// Small fast PRNG for P2C; one per worker thread.
class Rng {
public:
  explicit Rng(std::uint64_t seed) : s_(seed ? seed : 0x9e3779b97f4a7c15ULL) {}
  std::uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(next() % n); }

private:
  std::uint64_t s_;
};

inline constexpr std::uint32_t kNoEndpoint = UINT32_MAX;

class Balancer {
public:
  Balancer(model::LbPolicy policy, std::vector<EndpointPtr> endpoints);

  // Picks an endpoint, skipping ejected ones and `exclude_id` (the endpoint a retry moves away
  // from). When every candidate is ejected it still picks one (panic mode): refusing all traffic
  // because of passive health alone would turn a blip into an outage. Returns nullptr only for
  // an empty cluster or when the only endpoint is excluded.
  EndpointState* pick(std::int64_t now_ns, std::uint32_t exclude_id, Rng& rng);

  model::LbPolicy policy() const { return policy_; }
  const std::vector<EndpointPtr>& endpoints() const { return endpoints_; }

private:
  EndpointState* pickRoundRobin(std::int64_t now_ns, std::uint32_t exclude_id);
  EndpointState* pickLeastRequest(std::int64_t now_ns, std::uint32_t exclude_id, Rng& rng);

  const model::LbPolicy policy_;
  const std::vector<EndpointPtr> endpoints_;
  std::atomic<std::uint64_t> cursor_{0};
};

// Control-thread registry: one EndpointState per address:port for as long as some snapshot uses
// it. Not thread-safe; only the control thread builds snapshots.
class Registry {
public:
  EndpointPtr endpoint(const model::Endpoint& ep);
  // Forgets endpoints no live snapshot holds any more.
  void prune();
  std::size_t size() const { return by_key_.size(); }

private:
  std::unordered_map<std::string, std::weak_ptr<EndpointState>> by_key_;
  std::uint32_t next_id_ = 1;
};

std::string endpointKey(const std::string& address, std::uint16_t port);

}  // namespace sluice::lb
