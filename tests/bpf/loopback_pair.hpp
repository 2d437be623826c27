// Loopback socket plumbing shared by the real-kernel splice tests (tests/bpf, tests/cli):
//
//   client A  <──tcp──>  PA [agent]  PB  <──tcp──>  server B
//
// Header-only, test code only.
#pragma once

#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bpf/splice_datapath.hpp"

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

inline bool hasEffectiveCap(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  return ::syscall(SYS_capget, &header, data) == 0 &&
         (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

// The capabilities the splice datapath needs that this process lacks (CAP_SYS_ADMIN stands in for
// each): CAP_BPF for maps and programs, CAP_PERFMON for the verdict's tcp_sock read,
// CAP_NET_ADMIN for sk_skb programs and their attachment.
inline std::string missingBpfCapabilities() {
  constexpr int kCapPerfmon = 38;
  constexpr int kCapBpf = 39;
  const std::pair<int, const char*> needed[] = {
      {kCapBpf, "CAP_BPF"}, {kCapPerfmon, "CAP_PERFMON"}, {CAP_NET_ADMIN, "CAP_NET_ADMIN"}};
  std::string missing;
  for (const auto& [cap, name] : needed) {
    if (!hasEffectiveCap(CAP_SYS_ADMIN) && !hasEffectiveCap(cap)) {
      missing += (missing.empty() ? "" : ", ") + std::string(name);
    }
  }
  return missing;
}

// Why the splice tests cannot run here, or "" when they can. They skip only for what the test
// environment lacks (bpffs, a privilege) and only when the real program then fails to load: with
// every privilege, a refusal is the tests' to report as failures, never a skip.
inline std::string bpfUnavailableReason() {
  if (!onBpffs("/sys/fs/bpf")) {
    return "/sys/fs/bpf is not bpffs; mount it: mount -t bpf bpf /sys/fs/bpf";
  }
  const std::string missing = missingBpfCapabilities();
  if (missing.empty()) {
    return "";
  }
  static const Result<void> verified = bpf::SpliceDatapath::verify();
  if (verified) {
    return "";  // this kernel does not need what is missing
  }
  return "this process lacks " + missing +
         "; the kernel refuses the splice datapath: " + verified.error().message();
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
  if (fd.get() < 0 || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
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

#define ASSERT_OK(expr)                                                      \
  do {                                                                       \
    const auto& result_ = (expr);                                            \
    ASSERT_TRUE(result_.ok()) << #expr << ": " << result_.error().message(); \
  } while (0)
