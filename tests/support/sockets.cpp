#include "support/sockets.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace sluice::test {

namespace {

int msLeft(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on fd until the deadline; false on timeout.
bool waitFor(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, msLeft(deadline));
    if (r > 0) {
      return true;
    }
    if (r == 0) {
      return false;
    }
    if (errno != EINTR) {
      return false;
    }
  }
}

}  // namespace

// ---- Socket ----------------------------------------------------------------------------------

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    on_close_ = std::move(o.on_close_);
    o.fd_ = -1;
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) {
    if (on_close_) {
      on_close_(fd_);
    }
    ::close(fd_);
    fd_ = -1;
  }
}

void Socket::resetClose() {
  if (fd_ >= 0) {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
}

int Socket::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

Socket connectLoopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Socket();
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return Socket();
  }
  return Socket(fd);
}

namespace {
// True when /proc/net/tcp or tcp6 has a LISTEN socket on `port`.
bool listenSocketOn(std::uint16_t port) {
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state;
      fields >> sl >> local >> remote >> state;
      if (state == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, want) == 0) {
        return true;
      }
    }
  }
  return false;
}
}  // namespace

bool waitListening(std::uint16_t port, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (listenSocketOn(port)) {
      return true;
    }
    if (SteadyClock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool setNonBlocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) {
    return false;
  }
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return ::fcntl(fd, F_SETFL, flags) == 0;
}

bool sendAll(int fd, std::string_view bytes, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!waitFor(fd, POLLOUT, deadline)) {
        return false;
      }
      continue;
    }
    return false;
  }
  return true;
}

bool recvExact(int fd, std::string& out, std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  const std::size_t base = out.size();
  out.resize(base + n);
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + base + got, n - got, MSG_DONTWAIT);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!waitFor(fd, POLLIN, deadline)) {
        out.resize(base + got);
        return false;
      }
      continue;
    }
    out.resize(base + got);
    return false;
  }
  return true;
}

std::optional<std::string> recvUntil(int fd, std::string_view delim,
                                     std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  std::string buf;
  char tmp[4096];
  while (buf.find(delim) == std::string::npos) {
    ssize_t r = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (r > 0) {
      buf.append(tmp, static_cast<std::size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!waitFor(fd, POLLIN, deadline)) {
        return std::nullopt;
      }
      continue;
    }
    return std::nullopt;
  }
  return buf;
}

ReadEnd waitPeerClosed(int fd, std::chrono::milliseconds timeout, std::size_t* discarded) {
  const auto deadline = SteadyClock::now() + timeout;
  std::size_t total = 0;
  std::string tmp(1 << 16, '\0');
  ReadEnd end = ReadEnd::kTimeout;
  for (;;) {
    ssize_t r = ::recv(fd, tmp.data(), tmp.size(), MSG_DONTWAIT);
    if (r > 0) {
      total += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0) {
      end = ReadEnd::kEof;
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!waitFor(fd, POLLIN, deadline)) {
        end = ReadEnd::kTimeout;
        break;
      }
      continue;
    }
    end = errno == ECONNRESET ? ReadEnd::kReset : ReadEnd::kError;
    break;
  }
  if (discarded) {
    *discarded = total;
  }
  return end;
}

const char* readEndName(ReadEnd e) {
  switch (e) {
    case ReadEnd::kData:
      return "data";
    case ReadEnd::kEof:
      return "eof";
    case ReadEnd::kReset:
      return "reset";
    case ReadEnd::kError:
      return "error";
    case ReadEnd::kTimeout:
      return "timeout";
  }
  return "?";
}

std::uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// "127.0.0.1:port" of a connected socket's own end.
std::string localAddress(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  char ip[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

long tcpMemPages() {
  std::ifstream in("/proc/net/sockstat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("TCP:", 0) == 0) {
      auto pos = line.find(" mem ");
      if (pos != std::string::npos) {
        return std::stol(line.substr(pos + 5));
      }
    }
  }
  return -1;
}

}  // namespace sluice::test
