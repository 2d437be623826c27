#include "proxy/watchdog.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/stats.hpp"

namespace sluice::proxy {

boost::asio::awaitable<void> Watchdog::run() {
  while (!closed_) {
    armed_ = std::min(deadline_, window_end_);
    timer_.expires_at(armed_);
    co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    armed_ = Clock::time_point::max();
    if (closed_) {
      break;
    }
    if (expired(Clock::now())) {
      fire();
    }
  }
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
