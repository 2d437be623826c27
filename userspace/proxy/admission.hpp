// The agent-wide cap on open client connections (--max-connections), shared by every worker's
// HTTP and TCP-route listeners, as HAProxy's maxconn: a listener takes a slot before it accepts,
// so at the cap accepting pauses (the kernel's backlog holds the next connections) while the
// connections the agent has keep being served; a closing connection frees its slot and wakes
// the paused listeners.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

#include "admin/metrics.hpp"
#include "common/stats.hpp"

namespace sluice::proxy {

class ConnectionLimit {
public:
  explicit ConnectionLimit(std::size_t max) : max_(max) {}
  ConnectionLimit(const ConnectionLimit&) = delete;
  ConnectionLimit& operator=(const ConnectionLimit&) = delete;

  // Takes a slot for a connection about to be accepted; false at the cap.
  bool tryAcquire() {
    std::size_t n = open_.load(std::memory_order_relaxed);
    while (n < max_) {
      if (open_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) {
        return true;
      }
    }
    bump(paused_);
    return false;
  }
  // Called (on any thread) once when a slot frees after tryAcquire() failed: `wake` must post
  // to the waiter's own thread. Returns false if a slot freed meanwhile (try again at once).
  bool waitForSlot(std::function<void()> wake) {
    std::lock_guard lock(mutex_);
    // seq_cst on both sides (here and in release()): a release that decrements after this
    // check must see the waiter flag, the classic store-then-load pattern.
    waiters_.push_back(std::move(wake));
    has_waiters_.store(true);
    if (open_.load() < max_) {
      waiters_.pop_back();
      has_waiters_.store(!waiters_.empty());
      return false;
    }
    return true;
  }
  void release() {
    open_.fetch_sub(1);
    if (has_waiters_.load()) {
      std::vector<std::function<void()>> wake;
      {
        std::lock_guard lock(mutex_);
        wake.swap(waiters_);
        has_waiters_.store(false);
      }
      for (auto& w : wake) {
        w();
      }
    }
  }
  std::size_t open() const { return open_.load(std::memory_order_relaxed); }
  std::size_t max() const { return max_; }

  // sluice_connections_max, sluice_connections_open, sluice_accept_paused_total.
  void renderMetrics(admin::MetricsWriter& out) const {
    out.gauge("sluice_connections_max", "The --max-connections cap.", max_);
    out.gauge("sluice_connections_open", "Client connections holding a slot (accepting ones too).",
              open());
    out.counter("sluice_accept_paused_total",
                "Times a listener paused accepting at --max-connections.", paused_.load());
  }

  // One slot, released when destroyed (moves with the connection that holds it).
  class Slot {
  public:
    Slot() = default;
    explicit Slot(ConnectionLimit* limit) : limit_(limit) {}
    Slot(Slot&& o) noexcept : limit_(o.limit_) { o.limit_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept {
      reset();
      limit_ = o.limit_;
      o.limit_ = nullptr;
      return *this;
    }
    ~Slot() { reset(); }
    void reset() {
      if (limit_ != nullptr) {
        limit_->release();
        limit_ = nullptr;
      }
    }

  private:
    ConnectionLimit* limit_ = nullptr;
  };

private:
  const std::size_t max_;
  std::atomic<std::size_t> open_{0};
  std::atomic<bool> has_waiters_{false};
  std::mutex mutex_;
  std::vector<std::function<void()>> waiters_;
  Counter paused_{0};
};

}  // namespace sluice::proxy
