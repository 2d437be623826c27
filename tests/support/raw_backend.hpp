// In-process raw TCP backends for tests on loopback: echo, and a minimal Upgrade (101) server,
// cheap enough for thousands of concurrent connections, plus the small synchronisation pieces
// their handlers and tests share.
//
// Every accepted connection runs its handler on its own small-stack thread with a blocking
// socket; stop() (and the destructor) shut every live connection down and wait for the handlers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "support/sockets.hpp"

namespace sluice::test {

class RawBackend {
public:
  // The handler owns the connection for its lifetime; the socket is closed after it returns
  // unless the handler closed (or reset) it first.
  using Handler = std::function<void(Socket&)>;
  explicit RawBackend(Handler handler);
  ~RawBackend();
  RawBackend(const RawBackend&) = delete;
  RawBackend& operator=(const RawBackend&) = delete;

  std::uint16_t port() const { return port_; }
  std::size_t accepted() const { return accepted_.load(); }
  std::size_t active() const;
  // True once no handler is running (all connections finished) within `timeout`.
  bool waitIdle(std::chrono::milliseconds timeout) const;
  // Waits until at least `n` connections were accepted.
  bool waitAccepted(std::size_t n, std::chrono::milliseconds timeout) const;
  void stop();

private:
  void acceptLoop();
  static void* runHandler(void* arg);

  Handler handler_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread acceptor_;
  std::atomic<std::size_t> accepted_{0};
  mutable std::mutex mutex_;
  mutable std::condition_variable idle_cv_;
  std::set<int> live_;  // fds of running handlers, shut down on stop()
  std::size_t running_ = 0;
  bool stopped_ = false;
};

// Echoes every byte until EOF, then half-closes and returns.
void echoHandler(Socket& s);

// The minimal Upgrade server: reads a request head, answers
// "101 Switching Protocols" (Upgrade: websocket) followed right away by
// `early_prefix + <request path> + "\n"` in the same write, then echoes everything after the
// request head (bytes that came with the head first) until EOF.
RawBackend::Handler upgradeEchoHandler(std::string early_prefix);

// The scenario gets the first connection; later ones (the "agent still works" checks) echo.
RawBackend::Handler firstThenEcho(RawBackend::Handler first);

// A value set once by a backend handler thread and awaited by the test; later sets are ignored
// (a stray connection must not abort the process the way a second promise::set_value would).
template <class T>
class Once {
public:
  void set(T v) {
    std::lock_guard lock(mutex_);
    if (!value_) {
      value_ = std::move(v);
      cv_.notify_all();
    }
  }
  std::optional<T> wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [this] { return value_.has_value(); });
    return value_;
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<T> value_;
};

// Sets a flag when the scope ends: declared after a RawBackend, it releases a waiting handler
// before the backend's destructor waits for it.
struct SetOnExit {
  std::atomic<bool>& flag;
  ~SetOnExit() { flag = true; }
};

}  // namespace sluice::test
