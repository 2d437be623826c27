// sluice-flowbench's shared pieces: errors, fds, sockets, the JSON line, the options and the
// two workloads (bulk.cpp, msgs.cpp). What the tool does and prints: main.cpp.
#pragma once

#include <netinet/in.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::bench {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxChunk = 1 << 20;  // largest --chunk; bulk's pattern is sized by it

// Setup and protocol failures; caught in main and reported as the JSON error line.
class Failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void failErrno(const std::string& context);

inline double secondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Addresses and sockets (net.cpp)

struct Endpoint {
  sockaddr_in addr{};
  std::string text;
};

Endpoint parseEndpoint(std::string_view s);
void setOpt(int fd, int level, int name, int value, const char* what);
void setNonBlocking(int fd);
void setTimeout(int fd, int option, double seconds);
// Blocking I/O that gives up (EAGAIN) after `seconds` without progress in either direction.
void setStallTimeouts(int fd, double seconds);
// Binds before any thread starts, so the port is ready (and known, with port 0) when the client
// or the agent connects.
Fd listenOn(Endpoint& at);
// Blocking connect, retried on refusal until `deadline`: the agent opens its TCP listeners a
// moment after it reports ready.
Fd connectRetrying(const Endpoint& to, Clock::time_point deadline);
Fd acceptOne(int listener, double timeout_s);
void raiseFdLimit();

// ---------------------------------------------------------------------------------------------
// Output

class JsonLine {
public:
  JsonLine& add(std::string_view key, std::string_view value) {
    key_(key);
    out_ += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        std::array<char, 8> esc{};
        std::snprintf(esc.data(), esc.size(), "\\u%04x", static_cast<unsigned>(c));
        out_ += esc.data();
      } else {
        out_ += c;
      }
    }
    out_ += '"';
    return *this;
  }
  JsonLine& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonLine& add(std::string_view key, bool value) {
    key_(key);
    out_ += value ? "true" : "false";
    return *this;
  }
  JsonLine& add(std::string_view key, std::uint64_t value) {
    key_(key);
    out_ += std::to_string(value);
    return *this;
  }
  JsonLine& add(std::string_view key, int value) {
    key_(key);
    out_ += std::to_string(value);
    return *this;
  }
  JsonLine& add(std::string_view key, double value, int decimals = 3) {
    key_(key);
    if (!std::isfinite(value)) {
      out_ += "null";
      return *this;
    }
    std::array<char, 64> buf{};
    std::snprintf(buf.data(), buf.size(), "%.*f", decimals, value);
    out_ += buf.data();
    return *this;
  }
  JsonLine& addRaw(std::string_view key, std::string_view json) {
    key_(key);
    out_ += json;
    return *this;
  }
  std::string str() const { return out_ + "}"; }

private:
  void key_(std::string_view key) {
    out_ += out_.size() > 1 ? ", \"" : "\"";
    out_ += key;
    out_ += "\": ";
  }
  std::string out_ = "{";
};

// ---------------------------------------------------------------------------------------------
// Options (parsed in main.cpp)

enum class Verify { kNone, kSampled, kFull };

struct Options {
  std::string mode;
  Endpoint listen;
  std::optional<Endpoint> connect;
  std::string label;
  std::vector<int> proxy_pids;
  double connect_timeout_s = 10;
  double stall_timeout_s = 10;
  // bulk
  std::uint64_t bytes = 2ULL << 30;
  bool upload = true;  // client -> server; false: server -> client
  std::size_t chunk = 256 << 10;
  Verify verify = Verify::kSampled;
  // msgs
  int conns = 1000;
  double seconds = 10;
  double warmup = 1;
  std::size_t size = 100;
};

// Runs `body` on a thread; its Failure is kept for the caller, so a dead server does not take
// the process down before the client has a chance to report what it saw.
class Worker {
public:
  template <typename F>
  explicit Worker(F body)
      : thread_([this, body = std::move(body)]() mutable {
          try {
            body();
          } catch (const std::exception& e) {
            std::lock_guard lock(mu_);
            error_ = e.what();
          }
        }) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() {
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  // Joins; the thread's error, if any.
  std::string join() {
    if (thread_.joinable()) {
      thread_.join();
    }
    std::lock_guard lock(mu_);
    return error_;
  }

private:
  std::mutex mu_;
  std::string error_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// The workloads: each returns its JSON line or throws Failure.

std::string runBulk(const Options& o);  // bulk.cpp
std::string runMsgs(const Options& o);  // msgs.cpp

}  // namespace sluice::bench
