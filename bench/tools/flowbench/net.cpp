#include "flowbench.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace sluice::bench {

void failErrno(const std::string& context) {
  throw Failure(context + ": " + std::strerror(errno));
}

namespace {

std::string endpointText(const sockaddr_in& a) {
  std::array<char, INET_ADDRSTRLEN> buf{};
  ::inet_ntop(AF_INET, &a.sin_addr, buf.data(), buf.size());
  return std::string(buf.data()) + ":" + std::to_string(ntohs(a.sin_port));
}

}  // namespace

Endpoint parseEndpoint(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) {
    throw Failure("bad address '" + std::string(s) + "' (want IPv4:PORT)");
  }
  std::string host(s.substr(0, colon));
  unsigned port = 0;
  auto ps = s.substr(colon + 1);
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc() || p != ps.data() + ps.size() || port > 65535) {
    throw Failure("bad port in '" + std::string(s) + "'");
  }
  Endpoint e;
  e.addr.sin_family = AF_INET;
  e.addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &e.addr.sin_addr) != 1) {
    throw Failure("bad IPv4 address '" + host + "'");
  }
  e.text = std::string(s);
  return e;
}

void setOpt(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    failErrno(std::string("setsockopt ") + what);
  }
}

void setNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    failErrno("fcntl O_NONBLOCK");
  }
}

void setTimeout(int fd, int option, double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  if (::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv) != 0) {
    failErrno("setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
  }
}

void setStallTimeouts(int fd, double seconds) {
  setTimeout(fd, SO_RCVTIMEO, seconds);
  setTimeout(fd, SO_SNDTIMEO, seconds);
}

Fd listenOn(Endpoint& at) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    failErrno("socket");
  }
  setOpt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), sizeof at.addr) != 0) {
    failErrno("bind " + at.text);
  }
  if (::listen(fd.get(), 4096) != 0) {
    failErrno("listen " + at.text);
  }
  socklen_t len = sizeof at.addr;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&at.addr), &len);
  at.text = endpointText(at.addr);
  return fd;
}

Fd connectRetrying(const Endpoint& to, Clock::time_point deadline) {
  for (;;) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
      failErrno("socket");
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to.addr), sizeof to.addr) == 0) {
      return fd;
    }
    int err = errno;
    if ((err != ECONNREFUSED && err != EAGAIN && err != ETIMEDOUT) || Clock::now() >= deadline) {
      errno = err;
      failErrno("connect " + to.text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Fd acceptOne(int listener, double timeout_s) {
  pollfd p{listener, POLLIN, 0};
  int n = ::poll(&p, 1, static_cast<int>(timeout_s * 1000));
  if (n < 0) {
    failErrno("poll listener");
  }
  if (n == 0) {
    throw Failure("no connection reached the server within " + std::to_string(timeout_s) + " s");
  }
  Fd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) {
    failErrno("accept");
  }
  return fd;
}

void raiseFdLimit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace sluice::bench
