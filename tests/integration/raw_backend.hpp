// In-process raw TCP backends and socket helpers for the splice tests: echo, sink, source and a
// minimal Upgrade (101) server, cheap enough for thousands of concurrent connections, plus a
// seeded byte stream and an incremental SHA-256 so gigabytes can be checked without storing them.
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
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>

namespace sluice::test {

using SteadyClock = std::chrono::steady_clock;

// A deterministic byte stream (splitmix64): the same seed gives the same bytes however the
// stream is cut into pieces.
class ByteStream {
public:
  explicit ByteStream(std::uint64_t seed) : state_(seed) {}
  void fill(void* out, std::size_t n);
  std::string take(std::size_t n);

private:
  std::uint64_t next();
  std::uint64_t state_;
  std::uint64_t word_ = 0;
  unsigned left_ = 0;  // bytes of word_ not handed out yet
};

// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  std::string hex();  // finalizes

private:
  void* ctx_;
};

// SHA-256 of the first `n` bytes of ByteStream(seed).
std::string streamSha256(std::uint64_t seed, std::uint64_t n);

// Owns an fd; closes it on destruction.
class Socket {
public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() { close(); }
  Socket(Socket&& o) noexcept : fd_(o.fd_), on_close_(std::move(o.on_close_)) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void close();
  // SO_LINGER {1, 0} then close: the peer gets a RST.
  void resetClose();
  int release();
  // Called with the fd right before it is closed (RawBackend forgets it there).
  void onClose(std::function<void(int)> hook) { on_close_ = std::move(hook); }

private:
  int fd_ = -1;
  std::function<void(int)> on_close_;
};

// A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY; invalid on failure.
Socket connectLoopback(std::uint16_t port);
// Waits until a socket listens on `port` (/proc/net/tcp{,6}), without connecting to it: a probe
// connection would become a flow the tests would then have to tell apart.
bool waitListening(std::uint16_t port, std::chrono::milliseconds timeout);

bool setNonBlocking(int fd, bool on);
// send() until all is written; false on error. Blocks (poll) while the buffer is full, up to
// `timeout` in total.
bool sendAll(int fd, std::string_view bytes,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Reads exactly `n` bytes into `out` (appended); false on EOF, error or timeout.
bool recvExact(int fd, std::string& out, std::size_t n,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Reads until `delim` has been received; returns everything read (the data after the delimiter
// included), or nullopt on EOF, error or timeout.
std::optional<std::string> recvUntil(int fd, std::string_view delim,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

// How a read ended.
enum class ReadEnd { kData, kEof, kReset, kError, kTimeout };
// Waits up to `timeout` for the peer to close, discarding data; returns what ended it.
ReadEnd waitPeerClosed(int fd, std::chrono::milliseconds timeout, std::size_t* discarded = nullptr);
const char* readEndName(ReadEnd e);

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

// /proc/net/sockstat "TCP: ... mem N": pages charged to TCP sockets system-wide.
long tcpMemPages();

}  // namespace sluice::test
