#include "proxy/watchdog.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::proxy {

boost::asio::awaitable<void> Watchdog::run() {
  while (!closed_) {
    armed_ = deadline_;
    timer_.expires_at(armed_);
    co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (closed_) {
      break;
    }
    if (Clock::now() >= deadline_) {
      timed_out_ = true;
      deadline_ = Clock::time_point::max();
      for (auto* socket : watched_) {
        if (socket != nullptr) {
          boost::system::error_code ignored;
          socket->cancel(ignored);
        }
      }
    }
  }
}

}  // namespace sluice::proxy
