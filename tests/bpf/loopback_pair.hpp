// Loopback socket plumbing shared by the real-kernel splice tests (tests/bpf, tests/cli):
//
//   client A  <──tcp──>  PA [agent]  PB  <──tcp──>  server B
//
// Header-only, test code only.
#pragma once

#include <linux/magic.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

namespace sluice::testing {

constexpr int kIoTimeoutSeconds = 20;

class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

bool onBpffs(const char* path) {
  struct statfs fs {};
  return ::statfs(path, &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

// Why the splice tests cannot run here, or "" when they can: they load sk_skb programs and pin
// maps, which needs root (CAP_BPF + CAP_NET_ADMIN) and bpffs at /sys/fs/bpf.
std::string bpfUnavailableReason() {
  if (::geteuid() != 0) {
    return "needs root (CAP_BPF + CAP_NET_ADMIN) to load the splice program and its maps";
  }
  if (!onBpffs("/sys/fs/bpf")) {
    return "/sys/fs/bpf is not bpffs; mount it: mount -t bpf bpf /sys/fs/bpf";
  }
  return "";
}

// A pin root no other test process or test uses: /sys/fs/bpf/<prefix>-<pid>-<n>.
std::string uniquePinRoot(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return "/sys/fs/bpf/" + prefix + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

void setTimeouts(int fd) {
  timeval tv{kIoTimeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

Fd listenLoopback(std::uint16_t* port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd.get() < 0 || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(fd.get(), 8) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Fd();
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

Fd connectLoopback(std::uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (fd.get() < 0 ||
      ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Fd();
  }
  setTimeouts(fd.get());
  return fd;
}

Fd acceptOne(int listener) {
  Fd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (fd.get() >= 0) {
    setTimeouts(fd.get());
  }
  return fd;
}

// client A <-> PA (agent) ... PB (agent) <-> server B, all connected.
struct Topology {
  Fd a, pa, pb, b;
};

Topology makeTopology() {
  Topology t;
  std::uint16_t proxy_port = 0;
  std::uint16_t server_port = 0;
  Fd proxy = listenLoopback(&proxy_port);
  Fd server = listenLoopback(&server_port);
  if (proxy.get() < 0 || server.get() < 0) {
    return t;
  }
  t.a = connectLoopback(proxy_port);
  t.pa = acceptOne(proxy.get());
  t.pb = connectLoopback(server_port);
  t.b = acceptOne(server.get());
  return t;
}

bool complete(const Topology& t) {
  return t.a.get() >= 0 && t.pa.get() >= 0 && t.pb.get() >= 0 && t.b.get() >= 0;
}

}  // namespace sluice::testing

#define ASSERT_OK(expr)                                                                            \
  do {                                                                                             \
    const auto& result_ = (expr);                                                                  \
    ASSERT_TRUE(result_.ok()) << #expr << ": " << result_.error().message();                       \
  } while (0)
