#include "lb/balancer.hpp"

#include <algorithm>

namespace sluice::lb {

std::string endpointKey(const std::string& address, std::uint16_t port) {
  if (address.find(':') != std::string::npos) {
    return "[" + address + "]:" + std::to_string(port);
  }
  return address + ":" + std::to_string(port);
}

EndpointState::EndpointState(std::uint32_t id, std::string address, std::uint16_t port)
    : id_(id), address_(std::move(address)), port_(port), key_(endpointKey(address_, port_)) {}

void EndpointState::recordFailure(std::int64_t now_ns, const EjectionPolicy& policy) {
  std::uint32_t failures = consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::int64_t backoff = policy.base_ns;
  for (std::uint32_t i = 1; i < failures && backoff < policy.max_ns; ++i) {
    backoff *= 2;
  }
  backoff = std::min(backoff, policy.max_ns);
  ejected_until_ns_.store(now_ns + backoff, std::memory_order_relaxed);
}

Balancer::Balancer(model::LbPolicy policy, std::vector<EndpointPtr> endpoints)
    : policy_(policy), endpoints_(std::move(endpoints)) {}

EndpointState* Balancer::pick(std::int64_t now_ns, std::uint32_t exclude_id, Rng& rng) {
  if (endpoints_.empty()) {
    return nullptr;
  }
  return policy_ == model::LbPolicy::kLeastRequest ? pickLeastRequest(now_ns, exclude_id, rng)
                                                   : pickRoundRobin(now_ns, exclude_id);
}

EndpointState* Balancer::pickRoundRobin(std::int64_t now_ns, std::uint32_t exclude_id) {
  const std::size_t n = endpoints_.size();
  const std::uint64_t start = cursor_.fetch_add(1, std::memory_order_relaxed);
  EndpointState* fallback = nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    EndpointState* ep = endpoints_[(start + i) % n].get();
    if (ep->id() == exclude_id) {
      continue;
    }
    if (!ep->ejected(now_ns)) {
      return ep;
    }
    if (fallback == nullptr || ep->ejectedUntil() < fallback->ejectedUntil()) {
      fallback = ep;  // panic mode: the one that comes back soonest
    }
  }
  return fallback;
}

EndpointState* Balancer::pickLeastRequest(std::int64_t now_ns, std::uint32_t exclude_id, Rng& rng) {
  const auto n = static_cast<std::uint32_t>(endpoints_.size());
  auto usable = [&](const EndpointState* ep) {
    return ep->id() != exclude_id && !ep->ejected(now_ns);
  };
  // Two random draws; if either is unusable, fall back to a scan from a random start so that a
  // mostly ejected cluster still finds its healthy members.
  const std::uint32_t ia = rng.below(n);
  std::uint32_t ib = ia;
  if (n > 1) {
    ib = rng.below(n - 1);  // a second, distinct index
    ib += ib >= ia ? 1 : 0;
  }
  EndpointState* a = endpoints_[ia].get();
  EndpointState* b = endpoints_[ib].get();
  const bool ua = usable(a);
  const bool ub = usable(b);
  if (ua && ub) {
    return b->active() < a->active() ? b : a;
  }
  if (ua) {
    return a;
  }
  if (ub) {
    return b;
  }
  const std::uint32_t start = rng.below(n);
  EndpointState* best = nullptr;
  EndpointState* fallback = nullptr;
  for (std::uint32_t i = 0; i < n; ++i) {
    EndpointState* ep = endpoints_[(start + i) % n].get();
    if (ep->id() == exclude_id) {
      continue;
    }
    if (!ep->ejected(now_ns)) {
      if (best == nullptr || ep->active() < best->active()) {
        best = ep;
      }
    } else if (fallback == nullptr || ep->ejectedUntil() < fallback->ejectedUntil()) {
      fallback = ep;
    }
  }
  return best != nullptr ? best : fallback;
}

EndpointPtr Registry::endpoint(const model::Endpoint& ep) {
  std::string key = endpointKey(ep.address, ep.port);
  auto& slot = by_key_[key];
  if (auto existing = slot.lock()) {
    return existing;
  }
  auto created = std::make_shared<EndpointState>(next_id_++, ep.address, ep.port);
  slot = created;
  return created;
}

void Registry::prune() {
  std::erase_if(by_key_, [](const auto& kv) { return kv.second.expired(); });
}

}  // namespace sluice::lb
