// The handoff: once the agent has routed a connection and nothing in it needs per-message
// decisions any more, its bytes move by one of three strategies.
//
//   sockmap  the kernel redirects every skb to the peer socket (bpf/splice.bpf.c): no userspace
//            wake-up per message. Whole connections only (WebSocket/Upgrade, TCP routes), since a
//            spliced pair stays pinned to its backend for life.
//   pipe     splice(2) socket → pipe → socket: no copy into userspace, exact byte counts, so it
//            also serves bounded HTTP bodies, after which the connection is parsed again.
//   copy     read/write through the session's buffer: the fallback that always works.
//   adaptive copy per direction until it streams (fills the buffer read after read), then pipe:
//            the cheapest of the two for small messages and for bulk (bench/splice.sh).
//
// Every strategy propagates half-close (FIN) each way and a reset as a reset, enforces the tunnel
// idle timeout, and holds at most a bounded number of bytes per direction (see docs/splice.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/buffer.hpp"
#include "proxy/flow_registry.hpp"

namespace sluice::bpf {
class SpliceDatapath;
}

namespace sluice::proxy {

// kAdaptive: copy, moving a direction to pipe once it streams (kFullReadsForPipe full reads).
enum class SpliceStrategy : std::uint8_t { kSockmap, kPipe, kCopy, kAdaptive };
inline constexpr int kFullReadsForPipe = 4;

constexpr std::string_view strategyName(SpliceStrategy s) {
  switch (s) {
    case SpliceStrategy::kSockmap:
      return "sockmap";
    case SpliceStrategy::kPipe:
      return "pipe";
    case SpliceStrategy::kCopy:
      return "copy";
    case SpliceStrategy::kAdaptive:
      return "adaptive";
  }
  return "copy";
}

std::optional<SpliceStrategy> parseStrategy(std::string_view name);

// How the agent moves bytes it no longer needs to look at; fixed at startup.
struct SpliceConfig {
  SpliceStrategy connection = SpliceStrategy::kCopy;  // whole connections after the decision
  SpliceStrategy body = SpliceStrategy::kCopy;        // bounded bodies: kPipe or kCopy
  std::uint64_t body_threshold = 64 * 1024;  // Content-Length above which bodies are spliced
  // sockmap: bytes the kernel may queue for a peer that does not take them; past it the verdict
  // holds the direction and the agent resets the flow (bpf/splice.bpf.c, docs/splice.md).
  std::uint32_t flow_budget = 4 * 1024 * 1024;
  std::size_t pipe_bytes = 256 * 1024;  // F_SETPIPE_SZ of each relay pipe (rounded by the kernel)
  bpf::SpliceDatapath* datapath = nullptr;  // loaded and attached, or null (sockmap unavailable)
};

// Process-wide counters (relaxed atomics), rendered by the admin port.
struct SpliceStats {
  std::atomic<std::uint64_t> flows_total[4] = {};  // by SpliceStrategy
  std::atomic<std::int64_t> active_flows{0};
  std::atomic<std::uint64_t> fallbacks{0};    // sockmap pairs that could not be armed
  std::atomic<std::uint64_t> held{0};         // sockmap flows reset: a peer fell behind by the budget
  std::atomic<std::uint64_t> upgraded{0};     // adaptive directions moved from copy to pipe
  std::atomic<std::uint64_t> integrity{0};    // sockmap flows reset: kernel duplicated bytes
  std::atomic<std::uint64_t> body_splices{0};  // bounded bodies moved with splice(2)
  std::atomic<std::uint64_t> body_bytes{0};
};
SpliceStats& spliceStats();

// Relays one established pair of sockets in both directions until both have finished (EOF each
// way, or an error / reset / idle timeout on either). Owns neither socket; on return both are
// closed or shut down and no map entry refers to them.
class Relay {
public:
  Relay(boost::asio::ip::tcp::socket& client, boost::asio::ip::tcp::socket& backend,
        const SpliceConfig& config, std::chrono::milliseconds idle_timeout);

  // `from_client` / `from_backend`: bytes the agent already read from each side and not yet
  // forwarded; they are written before anything else moves. Returns the strategy actually used.
  boost::asio::awaitable<SpliceStrategy> run(SpliceStrategy strategy, Buffer& from_client,
                                             Buffer& from_backend, std::uint64_t flow_id);

private:
  using Clock = std::chrono::steady_clock;
  using tcp = boost::asio::ip::tcp;

  boost::asio::awaitable<void> idleWatch();
  boost::asio::awaitable<bool> copyDirection(tcp::socket& from, tcp::socket& to, Buffer& buf,
                                             bool adaptive);
  boost::asio::awaitable<bool> pipeDirection(tcp::socket& from, tcp::socket& to);
  boost::asio::awaitable<bool> sockmapDirection(tcp::socket& from, tcp::socket& to,
                                                std::uint64_t from_cookie,
                                                std::uint64_t to_written_base, Buffer& buf);
  boost::asio::awaitable<bool> waitRedirected(tcp::socket& to, std::uint64_t from_cookie,
                                              std::uint64_t to_written_base);
  boost::asio::awaitable<bool> writeAll(tcp::socket& to, Buffer& buf);
  void fail();  // resets both sides and wakes every pending operation
  void registerFlow(SpliceStrategy strategy, std::uint64_t flow_id);
  std::atomic<std::uint64_t>& counterTo(const tcp::socket& to);

  tcp::socket& client_;
  tcp::socket& backend_;
  const SpliceConfig& config_;
  const std::chrono::milliseconds idle_timeout_;
  boost::asio::steady_timer timer_;
  Clock::time_point last_activity_;
  std::uint64_t cookies_[2] = {0, 0};  // sockmap: client, backend
  std::uint64_t received_base_[2] = {0, 0};  // sockmap: tcpi_bytes_received at arming
  bool intact();  // sockmap: the verdict handled no more bytes than each socket received
  FlowInfo info_;
  bool sockmap_ = false;
  bool done_ = false;
  bool failed_ = false;
};

// Moves exactly `length` bytes from `from` to `to` with splice(2) through a pipe. The caller
// sets the deadline before each call; `touch` is called whenever bytes move. Returns false on
// EOF before `length`, an error, or cancellation (the caller's watchdog cancels the sockets).
boost::asio::awaitable<bool> spliceExactly(boost::asio::ip::tcp::socket& from,
                                           boost::asio::ip::tcp::socket& to, std::uint64_t length,
                                           std::size_t pipe_bytes, void (*touch)(void*),
                                           void* touch_arg);

}  // namespace sluice::proxy
