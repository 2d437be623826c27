#include "proxy/relay/flow_registry.hpp"

namespace sluice::proxy {

FlowRegistry& flowRegistry() {
  static FlowRegistry registry;
  return registry;
}

void FlowRegistry::add(FlowInfo* f) {
  std::lock_guard lock(mutex_);
  f->prev = nullptr;
  f->next = head_;
  if (head_ != nullptr) {
    head_->prev = f;
  }
  head_ = f;
}

void FlowRegistry::remove(FlowInfo* f) {
  std::lock_guard lock(mutex_);
  if (f->prev != nullptr) {
    f->prev->next = f->next;
  } else if (head_ == f) {
    head_ = f->next;
  }
  if (f->next != nullptr) {
    f->next->prev = f->prev;
  }
  f->prev = f->next = nullptr;
}

std::vector<FlowView> FlowRegistry::snapshot() const {
  const auto now = std::chrono::steady_clock::now();
  std::vector<FlowView> out;
  std::lock_guard lock(mutex_);
  for (const FlowInfo* f = head_; f != nullptr; f = f->next) {
    out.push_back(FlowView{
        f->id, f->client, f->backend, f->strategy.load(std::memory_order_relaxed),
        f->piped.load(std::memory_order_relaxed), f->bytes_in.load(std::memory_order_relaxed),
        f->bytes_out.load(std::memory_order_relaxed), f->client_cookie, f->backend_cookie,
        now - f->started});
  }
  return out;
}

}  // namespace sluice::proxy
