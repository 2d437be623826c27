#include "proxy/watchdog.hpp"

#include <algorithm>

#include <boost/asio/bind_allocator.hpp>

#include "common/heap_allocator.hpp"
#include "proxy/stats.hpp"

namespace sluice::proxy {

void Watchdog::wait(std::shared_ptr<void> owner) {
  armed_ = std::min(deadline_, window_end_);
  timer_.expires_at(armed_);
  // Its own block, not one from Asio's per-thread cache: it lives as long as the connection.
  timer_.async_wait(boost::asio::bind_allocator(
      HeapAllocator<void>{},
      [this, owner = std::move(owner)](const boost::system::error_code&) mutable {
        wake(std::move(owner));
      }));
}

void Watchdog::wake(std::shared_ptr<void> owner) {
  // A cancel (an earlier deadline was armed, or close()) wakes it as an expiry does.
  armed_ = Clock::time_point::max();
  if (closed_) {
    return;  // dropping `owner` may end the session
  }
  if (expired(Clock::now())) {
    fire();
  }
  wait(std::move(owner));
}

bool Watchdog::expired(Clock::time_point now) {
  if (now >= deadline_) {
    if (requestDeadlinePassed(now)) {
      bump(globalStats().request_deadlines);
    }
    return true;
  }
  if (rate_on_ && now >= window_end_) {
    if (window_blamed_ && window_bytes_ < window_min_) {
      bump(globalStats().slow_bodies);
      return true;  // too slow a body for a whole window, all of it the client's doing
    }
    window_bytes_ = 0;
    window_blamed_ = true;
    window_end_ = now + kRateWindow;
  }
  return false;
}

void Watchdog::fire() {
  timed_out_ = true;
  deadline_ = Clock::time_point::max();
  stopBodyRate();
  for (auto* socket : watched_) {
    if (socket != nullptr) {
      boost::system::error_code ignored;
      socket->cancel(ignored);
    }
  }
}

}  // namespace sluice::proxy
