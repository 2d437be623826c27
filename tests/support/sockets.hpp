// Blocking socket helpers for tests on loopback: an owning Socket, connect, send and receive
// with timeouts, how a read ended, a free port, and the system's TCP memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::test {

using SteadyClock = std::chrono::steady_clock;

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

// A free TCP port on 127.0.0.1 (bound then released; fine for tests on one machine).
std::uint16_t freePort();

// A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY; invalid on failure.
Socket connectLoopback(std::uint16_t port);
// Waits until a socket listens on `port` (/proc/net/tcp{,6}), without connecting to it: a probe
// connection would become a flow the tests would then have to tell apart.
bool waitListening(std::uint16_t port, std::chrono::milliseconds timeout);
// "127.0.0.1:port" of a connected socket's own end.
std::string localAddress(int fd);

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

// /proc/net/sockstat "TCP: ... mem N": pages charged to TCP sockets system-wide.
long tcpMemPages();

}  // namespace sluice::test
