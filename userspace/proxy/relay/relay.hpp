// The relay: once the agent has routed a connection and nothing in it needs per-message
// decisions any more, its bytes move by one of four strategies, one file each in proxy/relay/.
//
//   sockmap   the kernel redirects every skb to the peer socket (bpf/splice.bpf.c): no userspace
//             wake-up per message. Whole connections only (WebSocket/Upgrade, TCP routes), since a
//             spliced pair stays pinned to its backend for life. Kernel bookkeeping stays behind
//             bpf::SplicedPair.
//   pipe      splice(2) socket → pipe → socket: no copy into userspace, exact byte counts, so it
//             also serves bounded HTTP bodies, after which the connection is parsed again.
//   copy      read/write through the session's buffer: the fallback that always works.
//   adaptive  copy per direction until it streams (fills the buffer read after read), then pipe:
//             the cheapest of the two for small messages and for bulk (bench/splice.sh).
//
// Every strategy propagates half-close (FIN) each way and a reset as a reset, enforces the tunnel
// idle timeout, and holds at most a bounded number of bytes per direction (see docs/splice.md).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bpf/spliced_pair.hpp"
#include "common/buffer.hpp"
#include "proxy/relay/flow_registry.hpp"

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

// How the agent moves bytes it no longer needs to look at; configuration only, fixed at startup.
struct SpliceConfig {
  SpliceStrategy connection = SpliceStrategy::kCopy;  // whole connections after the decision
  SpliceStrategy body = SpliceStrategy::kCopy;        // bounded bodies: kPipe or kCopy
  std::uint64_t body_threshold = 64 * 1024;  // Content-Length above which bodies are spliced
  // sockmap: bytes the kernel may queue for a peer that does not take them; past it the verdict
  // holds the direction and the agent resets the flow (bpf/splice.bpf.c, docs/splice.md).
  std::uint32_t flow_budget = 4 * 1024 * 1024;
  std::size_t pipe_bytes = 256 * 1024;  // F_SETPIPE_SZ of each relay pipe (rounded by the kernel)
};

// Process-wide counters (relaxed atomics), rendered by proxy::Splicing.
struct SpliceStats {
  std::atomic<std::uint64_t> flows_total[4] = {};  // by SpliceStrategy
  std::atomic<std::int64_t> active_flows{0};
  std::atomic<std::uint64_t> fallbacks{0};  // sockmap pairs that could not be armed
  std::atomic<std::uint64_t> held{0};       // sockmap flows reset: a peer fell behind by the budget
  std::atomic<std::uint64_t> upgraded{0};   // adaptive directions moved from copy to pipe
  std::atomic<std::uint64_t> integrity{0};  // sockmap flows reset: kernel duplicated bytes
  std::atomic<std::uint64_t> body_splices{0};  // bounded bodies moved with splice(2)
  std::atomic<std::uint64_t> body_bytes{0};
};
SpliceStats& spliceStats();

// Relays one established pair of sockets in both directions until both have finished (EOF each
// way, or an error / reset / idle timeout on either). Owns neither socket; on return both are
// closed and no map entry refers to them.
class Relay {
public:
  // `datapath`: the loaded sockmap datapath, or null (sockmap then falls back to pipe).
  Relay(boost::asio::ip::tcp::socket& client, boost::asio::ip::tcp::socket& backend,
        const SpliceConfig& config, bpf::SpliceDatapath* datapath,
        std::chrono::milliseconds idle_timeout);
  ~Relay();

  // `from_client` / `from_backend`: bytes the agent already read from each side and not yet
  // forwarded; they are written before anything else moves. Returns the strategy actually used.
  boost::asio::awaitable<SpliceStrategy> run(SpliceStrategy strategy, Buffer& from_client,
                                             Buffer& from_backend, std::uint64_t flow_id);

private:
  using Clock = std::chrono::steady_clock;
  using tcp = boost::asio::ip::tcp;
  // What a strategy's progress callback updates for one direction.
  struct Direction {
    Relay* relay;
    std::atomic<std::uint64_t>* counter;  // bytes moved towards `to`
  };

  // Arms the sockmap pair; on failure the flow is relayed by pipe (counted as a fallback).
  SpliceStrategy armSockmap(std::uint64_t flow_id);
  boost::asio::awaitable<void> runDirection(SpliceStrategy strategy, bool upstream, Buffer& buf);
  boost::asio::awaitable<void> idleWatch();
  enum class CopyEnd : std::uint8_t { kDone, kFailed, kStreaming };
  // kStreaming (only when `until_streaming`): the direction filled the buffer read after read;
  // everything read so far is written and the caller moves it to splice(2).
  boost::asio::awaitable<CopyEnd> copyDirection(tcp::socket& from, tcp::socket& to, Buffer& buf,
                                                bool until_streaming);
  boost::asio::awaitable<bool> adaptiveDirection(tcp::socket& from, tcp::socket& to, Buffer& buf);
  boost::asio::awaitable<bool> pipeDirection(tcp::socket& from, tcp::socket& to);
  boost::asio::awaitable<bool> sockmapDirection(tcp::socket& from, tcp::socket& to, Buffer& buf);
  boost::asio::awaitable<bool> waitRedirected(tcp::socket& from);
  boost::asio::awaitable<bool> writeAll(tcp::socket& to, Buffer& buf);
  void fail();  // resets both sides and wakes every pending operation
  void registerFlow(SpliceStrategy strategy, std::uint64_t flow_id);
  Direction& direction(const tcp::socket& to) { return directions_[&to == &backend_ ? 0 : 1]; }
  bool intact();  // sockmap: no duplicated bytes (see bpf::SplicedPair::intact)

  tcp::socket& client_;
  tcp::socket& backend_;
  const SpliceConfig& config_;
  bpf::SpliceDatapath* datapath_;
  const std::chrono::milliseconds idle_timeout_;
  boost::asio::steady_timer timer_;
  Clock::time_point last_activity_;
  std::optional<bpf::SplicedPair> pair_;  // sockmap, once armed
  FlowInfo info_;
  Direction directions_[2];  // towards the backend, towards the client
  bool done_ = false;
  bool failed_ = false;
};

}  // namespace sluice::proxy
