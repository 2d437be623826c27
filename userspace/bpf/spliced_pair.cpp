#include "bpf/spliced_pair.hpp"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <optional>

namespace sluice::bpf {

namespace {

// glibc's struct tcp_info stops before tcpi_bytes_acked; the kernel's layout continues with it
// (UAPI, append-only).
struct TcpInfoExt {
  struct tcp_info base;
  std::uint64_t pacing_rate;
  std::uint64_t max_pacing_rate;
  std::uint64_t bytes_acked;
  std::uint64_t bytes_received;
};
static_assert(offsetof(TcpInfoExt, bytes_acked) == 120);
static_assert(offsetof(TcpInfoExt, bytes_received) == 128);

std::optional<TcpInfoExt> tcpInfo(int fd) {
  TcpInfoExt info{};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || len < sizeof(info)) {
    return std::nullopt;
  }
  return info;
}

// Bytes ever written into this socket's TCP send queue, up to a constant: acknowledged plus
// still queued (write_seq - snd_una). Differences of two readings are exact.
std::optional<std::uint64_t> bytesWritten(int fd) {
  auto info = tcpInfo(fd);
  int outq = 0;
  if (!info || ::ioctl(fd, SIOCOUTQ, &outq) != 0) {
    return std::nullopt;
  }
  return info->bytes_acked + static_cast<std::uint64_t>(outq);
}

// Bytes this socket's TCP received in order (tcpi_bytes_received), the agent's reads included.
std::optional<std::uint64_t> bytesReceived(int fd) {
  auto info = tcpInfo(fd);
  return info ? std::optional<std::uint64_t>(info->bytes_received) : std::nullopt;
}

// Bytes the agent itself consumed from a socket not yet in the sockhash: received minus what
// still waits in the receive queue (the verdict will see those). Read in this order, a byte
// arriving in between only lowers the result, which can never make intact() fail falsely.
std::uint64_t consumedBytes(int fd) {
  const std::uint64_t received = bytesReceived(fd).value_or(0);
  int inq = 0;
  if (::ioctl(fd, SIOCINQ, &inq) != 0 || inq < 0) {
    inq = 0;
  }
  return received - std::min<std::uint64_t>(received, static_cast<std::uint64_t>(inq));
}

}  // namespace

Result<SplicedPair> SpliceDatapath::arm(int client_fd, int backend_fd, std::uint64_t flow_id,
                                        std::uint32_t budget) {
  const auto wc = bytesWritten(client_fd);
  const auto wb = bytesWritten(backend_fd);
  auto cc = socketCookie(client_fd);
  auto cb = socketCookie(backend_fd);
  if (!wc || !wb) {
    return Error(EINVAL, "arm: socket state unreadable (TCP_INFO, SIOCOUTQ)");
  }
  if (!cc || !cb) {
    return !cc ? cc.error() : cb.error();
  }
  const std::array<std::uint64_t, 2> received{consumedBytes(client_fd), consumedBytes(backend_fd)};
  SLUICE_CHECK(addPair(client_fd, backend_fd, flow_id, budget));
  return SplicedPair(*this, {client_fd, backend_fd}, {*cc, *cb}, {*wc, *wb}, received);
}

SplicedPair::SplicedPair(SpliceDatapath& datapath, std::array<int, 2> fds,
                         std::array<std::uint64_t, 2> cookies,
                         std::array<std::uint64_t, 2> written_base,
                         std::array<std::uint64_t, 2> received_base)
    : datapath_(&datapath),
      fds_(fds),
      cookies_(cookies),
      written_base_(written_base),
      received_base_(received_base) {}

SplicedPair::SplicedPair(SplicedPair&& other) noexcept
    : datapath_(other.datapath_),
      fds_(other.fds_),
      cookies_(other.cookies_),
      written_base_(other.written_base_),
      received_base_(other.received_base_) {
  other.datapath_ = nullptr;
}

SplicedPair::~SplicedPair() {
  if (datapath_ != nullptr) {
    // Both directions ended (or the flow was reset): nothing is in flight, so the entries can
    // go. ENOENT: the sockets closed first and the sweep or the kernel took them.
    (void)datapath_->removePairByCookie(cookies_[kClient]);
  }
}

Result<FlowStats> SplicedPair::stats(Side side) const {
  return datapath_->stats(cookies_[side]);
}

std::chrono::steady_clock::time_point SplicedPair::lastActivity() const {
  // bpf_ktime_get_ns is CLOCK_MONOTONIC, the clock of steady_clock on Linux.
  std::chrono::steady_clock::time_point last{};
  for (std::uint64_t cookie : cookies_) {
    if (auto st = datapath_->stats(cookie); st && st->last_seen_ns != 0) {
      last = std::max(
          last, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(st->last_seen_ns)));
    }
  }
  return last;
}

Result<bool> SplicedPair::drained(Side from) const {
  const Side to = from == kClient ? kBackend : kClient;
  SLUICE_TRY(const FlowStats st, datapath_->stats(cookies_[from]));
  const auto written = bytesWritten(fds_[to]);
  if (!written) {
    return Error(errno, "TCP_INFO of the peer socket");
  }
  return *written - written_base_[to] >= st.bytes;
}

Result<void> SplicedPair::intact() const {
  for (Side side : {kClient, kBackend}) {
    auto st = datapath_->stats(cookies_[side]);
    auto received = bytesReceived(fds_[side]);
    if (st && received && st->bytes + st->passed_bytes > *received - received_base_[side]) {
      return Error(EPROTO,
                   "flow cookie " + std::to_string(cookies_[side]) + ": the kernel handled " +
                       std::to_string(st->bytes + st->passed_bytes) +
                       " bytes but the socket received " +
                       std::to_string(*received - received_base_[side]) + ": duplicated data");
    }
  }
  return success();
}

}  // namespace sluice::bpf
