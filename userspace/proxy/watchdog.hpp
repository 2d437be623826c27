// One deadline per connection for every timeout it has (idle, head, body, upstream response):
// arming replaces the deadline, and a timer wakes only when the earliest one may have passed.
// On expiry it marks the timeout and cancels the sockets it watches, so the operation pending
// on them completes with operation_aborted and the session reads takeTimeout() to tell a timeout
// from a refusal. One timer per connection, re-armed without allocation.
#pragma once

#include <array>
#include <chrono>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sluice::proxy {

class Watchdog {
public:
  using Clock = std::chrono::steady_clock;
  // Which socket a watch slot holds: the client's, and the upstream connection in use.
  enum Slot : std::size_t { kClient = 0, kUpstream = 1 };

  explicit Watchdog(const boost::asio::any_io_executor& executor) : timer_(executor) {}

  void watch(Slot slot, boost::asio::ip::tcp::socket* socket) { watched_[slot] = socket; }
  // The deadline is now + `d`; an earlier deadline than the timer's wakes it to re-arm.
  void arm(std::chrono::milliseconds d) {
    deadline_ = Clock::now() + d;
    if (deadline_ < armed_) {
      timer_.cancel();
    }
  }
  void disarm() { deadline_ = Clock::time_point::max(); }
  // True once if the deadline passed since the last call.
  bool takeTimeout() {
    const bool t = timed_out_;
    timed_out_ = false;
    return t;
  }
  bool timedOut() const { return timed_out_; }

  // The watchdog's coroutine; ends after close().
  boost::asio::awaitable<void> run();
  void close() {
    closed_ = true;
    timer_.cancel();
  }

private:
  boost::asio::steady_timer timer_;
  std::array<boost::asio::ip::tcp::socket*, 2> watched_{};
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_ = Clock::time_point::max();
  bool timed_out_ = false;
  bool closed_ = false;
};

}  // namespace sluice::proxy
