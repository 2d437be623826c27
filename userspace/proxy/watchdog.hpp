// One deadline per connection for every timeout it has (idle, head, body, upstream response):
// arming replaces the deadline, and a timer wakes only when the earliest one may have passed.
// On expiry it marks the timeout and cancels the sockets it watches, so the operation pending
// on them completes with operation_aborted and the session reads takeTimeout() to tell a timeout
// from a refusal. One timer per connection, re-armed without allocation.
//
// Two bounds sit on top of the inactivity deadlines, so that a client trickling bytes cannot
// hold a connection (and a backend's worker) forever:
// - the request's total deadline (--request-timeout): startRequest() fixes it at the head's
//   first byte; arm(d, kCapped) never arms past it. The session caps reading the head, the
//   forwarder reading the body; waits on the upstream are not the client's and are not capped.
// - the minimum body rate (--min-body-rate): while reading a request body the client must send
//   at least rate × 10 s in every 10 s window. A window in which the upstream was the slow side
//   (upstreamHeldUp()) does not count against the client.
// Each expiry of either bound is counted in sluice_client_timeouts_total by reason.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>

#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace sluice::proxy {

class Watchdog {
public:
  using Clock = std::chrono::steady_clock;
  // Which socket a watch slot holds: the client's, and the upstream connection in use.
  enum Slot : std::size_t { kClient = 0, kUpstream = 1 };
  enum Cap : bool { kUncapped = false, kCapped = true };
  static constexpr std::chrono::seconds kRateWindow{10};

  // The worker's io_context executor itself, not an any_io_executor: the timer and its pending
  // wait (which lives as long as the connection) each carry a copy, 8 bytes instead of 40.
  explicit Watchdog(const boost::asio::io_context::executor_type& executor) : timer_(executor) {}

  void watch(Slot slot, boost::asio::ip::tcp::socket* socket) { watched_[slot] = socket; }
  // The deadline is now + `d` (capped: no later than the request's deadline); an earlier
  // deadline than the timer's wakes it to re-arm.
  void arm(std::chrono::milliseconds d, Cap cap = kUncapped) {
    deadline_ = Clock::now() + d;
    if (cap == kCapped && request_deadline_ < deadline_) {
      deadline_ = request_deadline_;
    }
    rearmIfSooner(deadline_);
  }
  void disarm() { deadline_ = Clock::time_point::max(); }

  // A request's head began now: its total deadline is now + `total` (0: none).
  void startRequest(std::chrono::milliseconds total) {
    request_deadline_ = total.count() > 0 ? Clock::now() + total : Clock::time_point::max();
  }
  // Reading a request body at no less than `bytes_per_second` (0: no minimum) from now.
  void startBodyRate(std::uint64_t bytes_per_second) {
    window_min_ = bytes_per_second * kRateWindow.count();
    rate_on_ = bytes_per_second > 0;
    window_bytes_ = 0;
    window_blamed_ = true;
    window_end_ = rate_on_ ? Clock::now() + kRateWindow : Clock::time_point::max();
    rearmIfSooner(window_end_);
  }
  void stopBodyRate() {
    rate_on_ = false;
    window_end_ = Clock::time_point::max();
  }
  // Body bytes received from the client.
  void countBody(std::size_t n) { window_bytes_ += n; }
  // Writing the body upstream blocked for a while: this window is not the client's to blame.
  void upstreamHeldUp() { window_blamed_ = false; }

  // True once if the deadline passed since the last call.
  bool takeTimeout() {
    const bool t = timed_out_;
    timed_out_ = false;
    return t;
  }
  bool timedOut() const { return timed_out_; }

  // Starts the timer. Its pending wait keeps `owner` (the session) alive until close(). A
  // plain completion handler, not a coroutine: an idle connection pays a timer operation for
  // its watchdog, not a coroutine thread and frame (about 0.9 KiB).
  void start(std::shared_ptr<void> owner) { wait(std::move(owner)); }
  void close() {
    closed_ = true;
    timer_.cancel();
  }

private:
  void wait(std::shared_ptr<void> owner);
  void wake(std::shared_ptr<void> owner);
  void rearmIfSooner(Clock::time_point t) {
    if (t < armed_) {
      timer_.cancel();
    }
  }
  // At a wake-up: whether a deadline or the rate window says time is up.
  bool expired(Clock::time_point now);
  bool requestDeadlinePassed(Clock::time_point now) const {
    return deadline_ == request_deadline_ && now >= request_deadline_;
  }
  void fire();

  boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                    boost::asio::io_context::executor_type>
      timer_;
  std::array<boost::asio::ip::tcp::socket*, 2> watched_{};
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_ = Clock::time_point::max();
  Clock::time_point request_deadline_ = Clock::time_point::max();
  Clock::time_point window_end_ = Clock::time_point::max();
  std::uint64_t window_min_ = 0;
  std::uint64_t window_bytes_ = 0;
  bool window_blamed_ = true;
  bool rate_on_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
};

}  // namespace sluice::proxy
