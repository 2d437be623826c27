#include "upstream/connector.hpp"

#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/net.hpp"
#include "common/ready_wait.hpp"

namespace sluice::upstream {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

Connector::Connector(asio::any_io_executor executor, Pool& pool, lb::Rng& rng,
                     std::chrono::milliseconds timeout)
    : executor_(std::move(executor)), pool_(pool), rng_(rng), timeout_(timeout) {}

asio::awaitable<ConnectStatus> Connector::open(Connection& conn, const lb::EndpointState& ep) {
  using namespace asio::experimental::awaitable_operators;
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(ep.address(), ec);
  if (ec) {
    co_return ConnectStatus::kRefused;
  }
  // The connect races a timer; whichever ends first cancels the other. This runs per new
  // connection, not per request: pooled connections skip it.
  asio::steady_timer timer(executor_);
  timer.expires_after(timeout_);
  auto done = co_await (conn.socket.async_connect(tcp::endpoint(addr, ep.port()), kNoThrow) ||
                        timer.async_wait(kNoThrow));
  if (done.index() != 0) {
    co_return ConnectStatus::kTimedOut;
  }
  auto [cec] = std::get<0>(done);
  if (cec) {
    co_return ConnectStatus::kRefused;
  }
  conn.socket.set_option(tcp::no_delay(true), ec);
  // Reads of the response then tell whether they drained the socket (net::receiveNow()), so the
  // connection's watch in the pool is queued without a system call.
  net::enableInqHint(conn.socket.native_handle());
  co_return ConnectStatus::kConnected;
}

asio::awaitable<ConnectResult> Connector::connect(lb::Balancer& balancer, ClusterStats& cluster,
                                                  ConnectOptions options) {
  ConnectResult result;
  std::uint32_t exclude = options.exclude;
  // One retry on another endpoint after a failed connect; the failed one is ejected.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto now = std::chrono::steady_clock::now();
    lb::EndpointState* ep = balancer.pick(net::monotonicNs(now), exclude, rng_);
    if (ep == nullptr) {
      break;  // no other endpoint: report how the last attempt failed
    }
    if (options.pooled) {
      if (ConnectionPtr conn = pool_.acquire(ep->id())) {
        bump(stats().reused);
        co_return ConnectResult{ConnectStatus::kConnected, std::move(conn), ep, true};
      }
    }
    if (options.max_pending != 0 && !cluster.pending.tryTake(options.max_pending)) {
      bump(cluster.overflow_pending);
      co_return ConnectResult{ConnectStatus::kOverflow, nullptr, nullptr, false};
    }
    auto conn = std::make_shared<Connection>(executor_, ep->id());
    bump(stats().connects);
    result.status = co_await open(*conn, *ep);
    if (options.max_pending != 0) {
      cluster.pending.give();
    }
    if (result.status == ConnectStatus::kConnected) {
      co_return ConnectResult{ConnectStatus::kConnected, std::move(conn), ep, false};
    }
    ep->recordFailure(net::monotonicNs(), lb::EjectionPolicy{});
    bump(cluster.connect_failures);
    exclude = ep->id();
    if (attempt == 0) {
      bump(cluster.retries);
    }
  }
  co_return result;
}

}  // namespace sluice::upstream
