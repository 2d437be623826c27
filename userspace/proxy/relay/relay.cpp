#include "proxy/relay/relay.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "bpf/spliced_pair.hpp"
#include "common/log.hpp"
#include "common/net.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

SpliceStats& spliceStats() {
  static SpliceStats stats;
  return stats;
}

namespace {

// Closing with SO_LINGER 0 sends a reset: how a reset on one side reaches the other.
void resetAndClose(tcp::socket& s) {
  error_code ignored;
  if (s.is_open()) {
    s.set_option(asio::socket_base::linger(true, 0), ignored);
    s.close(ignored);
  }
}

std::string remoteText(const tcp::socket& s) {
  error_code ec;
  const auto ep = s.remote_endpoint(ec);
  return ec ? std::string("?") : net::endpointText(ep);
}

}  // namespace

Relay::Relay(tcp::socket& client, tcp::socket& backend, const SpliceConfig& config,
             bpf::SpliceDatapath* datapath, std::chrono::milliseconds idle_timeout)
    : client_(client),
      backend_(backend),
      config_(config),
      datapath_(datapath),
      idle_timeout_(idle_timeout),
      timer_(client.get_executor()),
      last_activity_(Clock::now()),
      directions_{{this, &info_.bytes_in}, {this, &info_.bytes_out}} {}

Relay::~Relay() = default;

void Relay::fail() {
  failed_ = true;
  resetAndClose(client_);
  resetAndClose(backend_);
  timer_.cancel();
}

asio::awaitable<bool> Relay::writeAll(tcp::socket& to, Buffer& buf) {
  while (!buf.empty()) {
    auto [ec, n] = co_await asio::async_write(to, asio::buffer(buf.readable()), kNoThrow);
    if (ec) {
      co_return false;
    }
    buf.consume(n);
    last_activity_ = Clock::now();
    direction(to).counter->fetch_add(n, std::memory_order_relaxed);
  }
  co_return true;
}

asio::awaitable<void> Relay::idleWatch() {
  const auto tick = std::min<std::chrono::milliseconds>(idle_timeout_, std::chrono::seconds(1));
  while (!done_ && !failed_) {
    Clock::time_point last = last_activity_;
    if (pair_) {
      // The kernel's bytes never wake the agent: their last arrival is in the flow counters.
      last = std::max(last, pair_->lastActivity());
      if (!intact()) {
        fail();
        co_return;
      }
    }
    const auto now = Clock::now();
    if (now - last >= idle_timeout_) {
      SPDLOG_LOGGER_DEBUG(log::get("splice"), "relay idle for {} ms: closing",
                          idle_timeout_.count());
      fail();
      co_return;
    }
    timer_.expires_at(pair_ ? std::min(last + idle_timeout_, now + tick) : last + idle_timeout_);
    co_await timer_.async_wait(kNoThrow);
    if ((co_await asio::this_coro::cancellation_state).cancelled() !=
        asio::cancellation_type::none) {
      co_return;  // the directions finished first
    }
  }
}

void Relay::registerFlow(SpliceStrategy strategy, std::uint64_t flow_id) {
  static std::atomic<std::uint64_t> next_id{1};
  info_.id = flow_id != 0 ? flow_id : next_id.fetch_add(1, std::memory_order_relaxed);
  info_.client = remoteText(client_);
  info_.backend = remoteText(backend_);
  info_.started = Clock::now();
  info_.strategy.store(static_cast<std::uint8_t>(strategy), std::memory_order_relaxed);
  if (pair_) {
    info_.client_cookie = pair_->cookie(bpf::SplicedPair::kClient);
    info_.backend_cookie = pair_->cookie(bpf::SplicedPair::kBackend);
  }
  flowRegistry().add(&info_);
}

asio::awaitable<void> Relay::runDirection(SpliceStrategy strategy, bool upstream, Buffer& buf) {
  tcp::socket& from = upstream ? client_ : backend_;
  tcp::socket& to = upstream ? backend_ : client_;
  bool ok = false;
  switch (strategy) {
    case SpliceStrategy::kSockmap:
      ok = co_await sockmapDirection(from, to, buf);
      break;
    case SpliceStrategy::kPipe:
      ok = co_await pipeDirection(from, to);
      break;
    case SpliceStrategy::kCopy:
      ok = co_await copyDirection(from, to, buf, false) == CopyEnd::kDone;
      break;
    case SpliceStrategy::kAdaptive:
      ok = co_await adaptiveDirection(from, to, buf);
      break;
  }
  if (!ok && !failed_) {
    fail();
  }
}

asio::awaitable<SpliceStrategy> Relay::run(SpliceStrategy strategy, Buffer& from_client,
                                           Buffer& from_backend, std::uint64_t flow_id) {
  using namespace asio::experimental::awaitable_operators;
  auto& stats = spliceStats();
  error_code ignored;
  client_.native_non_blocking(true, ignored);
  backend_.native_non_blocking(true, ignored);
  if (strategy == SpliceStrategy::kSockmap && datapath_ == nullptr) {
    strategy = SpliceStrategy::kPipe;
  }
  if (strategy == SpliceStrategy::kSockmap || strategy == SpliceStrategy::kPipe) {
    // What the agent already holds goes first; the kernel strategies start on empty buffers.
    if (!co_await writeAll(backend_, from_client) || !co_await writeAll(client_, from_backend)) {
      fail();
      co_return strategy;
    }
  }
  if (strategy == SpliceStrategy::kSockmap) {
    strategy = armSockmap(flow_id);
  }
  stats.flows_total[static_cast<std::size_t>(strategy)].fetch_add(1, std::memory_order_relaxed);
  stats.active_flows.fetch_add(1, std::memory_order_relaxed);
  registerFlow(strategy, flow_id);
  last_activity_ = Clock::now();
  co_await (
      (runDirection(strategy, true, from_client) && runDirection(strategy, false, from_backend)) ||
      idleWatch());
  done_ = true;
  timer_.cancel();
  pair_.reset();  // both directions ended: nothing is in flight, the entries can go
  stats.active_flows.fetch_sub(1, std::memory_order_relaxed);
  flowRegistry().remove(&info_);
  client_.close(ignored);
  backend_.close(ignored);
  co_return strategy;
}

}  // namespace sluice::proxy
