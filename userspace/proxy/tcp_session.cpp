#include "proxy/tcp_session.hpp"

#include <chrono>
#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/buffer.hpp"
#include "common/log.hpp"
#include "proxy/handoff.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

namespace {

std::int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

// Connects within `timeout`; false on refusal, error or timeout.
asio::awaitable<bool> connectWithin(tcp::socket& socket, const tcp::endpoint& to,
                                    std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(socket.get_executor());
  timer.expires_after(timeout);
  auto result = co_await (socket.async_connect(to, kNoThrow) || timer.async_wait(kNoThrow));
  if (result.index() != 0) {
    co_return false;
  }
  auto [ec] = std::get<0>(result);
  co_return !ec;
}

asio::awaitable<void> serve(Worker& worker, tcp::socket client, std::uint16_t port) {
  const ProxyConfig& cfg = worker.config();
  auto& g = globalStats();
  g.active_connections.fetch_add(1, std::memory_order_relaxed);
  bump(g.connections_total);
  struct Leave {
    ~Leave() { globalStats().active_connections.fetch_sub(1, std::memory_order_relaxed); }
  } leave;

  // The snapshot is pinned for the connect decision only: the flow then lives on its own.
  std::shared_ptr<const Snapshot> snap = worker.snapshot();
  const std::uint32_t cluster = snap ? snap->tcpCluster(port) : kNoTcpRoute;
  if (cluster == kNoTcpRoute) {
    co_return;  // the route was removed after this listener accepted: close
  }
  lb::Balancer& balancer = *snap->balancers[cluster];
  ClusterStats* stats = snap->cluster_stats[cluster].get();
  tcp::socket backend(client.get_executor());
  std::uint32_t exclude = lb::kNoEndpoint;
  bool connected = false;
  for (int attempt = 0; attempt < 2 && !connected; ++attempt) {
    lb::EndpointState* ep = balancer.pick(nowNs(), exclude, worker.rng());
    if (ep == nullptr) {
      break;
    }
    error_code ec;
    const auto addr = asio::ip::make_address(ep->address(), ec);
    if (ec) {
      break;
    }
    bump(g.upstream_connects);
    backend = tcp::socket(client.get_executor());
    connected = co_await connectWithin(backend, tcp::endpoint(addr, ep->port()),
                                       cfg.upstream_connect_timeout);
    if (!connected) {
      ep->recordFailure(nowNs(), lb::EjectionPolicy{});
      bump(stats->connect_failures);
      exclude = ep->id();
      if (attempt == 0) {
        bump(stats->retries);
      }
    } else {
      ep->recordSuccess();
    }
  }
  if (!connected) {
    // Nothing to relay to: a reset tells the client at once (no HTTP to answer with).
    error_code ignored;
    client.set_option(asio::socket_base::linger(true, 0), ignored);
    co_return;
  }
  snap.reset();
  error_code ignored;
  client.set_option(tcp::no_delay(true), ignored);
  backend.set_option(tcp::no_delay(true), ignored);
  Buffer from_client(cfg.io_buffer_bytes);
  Buffer from_backend(cfg.io_buffer_bytes);
  Relay relay(client, backend, cfg.splice, cfg.tunnel_idle_timeout);
  co_await relay.run(cfg.splice.connection, from_client, from_backend, 0);
}

}  // namespace

void startTcpSession(Worker& worker, tcp::socket socket, std::uint16_t port) {
  asio::co_spawn(worker.io(), serve(worker, std::move(socket), port), asio::detached);
}

}  // namespace sluice::proxy
