#include "proxy/tcp_session.hpp"

#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "proxy/relay/relay.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

asio::awaitable<void> serve(Worker& worker, tcp::socket client, std::uint16_t port,
                            [[maybe_unused]] ConnectionLimit::Slot slot) {  // held for the flow
  auto& g = globalStats();
  g.connectionOpened();
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
  co_await relayToCluster(worker, client, std::move(snap), cluster, {});
}

}  // namespace

asio::awaitable<void> relayToCluster(Worker& worker, tcp::socket& client,
                                     std::shared_ptr<const Snapshot> snap, std::uint32_t cluster,
                                     std::span<const std::uint8_t> first) {
  const ProxyConfig& cfg = worker.config();
  // The cluster's breakers hold for TCP routes too: a flow is a busy upstream connection.
  const std::shared_ptr<upstream::ClusterStats> stats = snap->cluster_stats[cluster];
  const BreakerLimits limits = breakerLimits(snap->cluster_options[cluster], cfg);
  struct Busy {
    upstream::ClusterStats* stats = nullptr;
    ~Busy() {
      if (stats != nullptr) {
        stats->busy.give();
      }
    }
  } busy;
  upstream::ConnectResult connected;
  if (stats->busy.tryTake(limits.connections)) {
    busy.stats = stats.get();
    connected = co_await worker.connector().connect(
        *snap->balancers[cluster], *stats, {.pooled = false, .max_pending = limits.pending});
  } else {
    bump(stats->overflow_connections);
    connected.status = upstream::ConnectStatus::kOverflow;
  }
  snap.reset();
  if (connected.status != upstream::ConnectStatus::kConnected) {
    // Nothing to relay to: a reset tells the client at once (no HTTP to answer with).
    error_code ignored;
    client.set_option(asio::socket_base::linger(true, 0), ignored);
    co_return;
  }
  connected.endpoint->recordSuccess();
  error_code ignored;
  client.set_option(tcp::no_delay(true), ignored);
  upstream::Connection& backend = *connected.connection;
  Buffer from_client;
  from_client.acquire(worker.buffers());
  backend.buffer.acquire(worker.buffers());
  if (!first.empty()) {
    // What the agent read to route the flow (a ClientHello) goes first, verbatim.
    auto [ec, n] =
        co_await asio::async_write(backend.socket, asio::buffer(first.data(), first.size()),
                                   asio::as_tuple(asio::use_awaitable));
    if (ec) {
      co_return;
    }
  }
  Relay relay(client, backend.socket, cfg.splice, worker.datapath(), cfg.tunnel_idle_timeout);
  co_await relay.run(cfg.splice.connection, from_client, backend.buffer, 0);
}

void startTcpSession(Worker& worker, tcp::socket socket, std::uint16_t port,
                     ConnectionLimit::Slot slot) {
  asio::co_spawn(worker.io(), serve(worker, std::move(socket), port, std::move(slot)),
                 asio::detached);
}

}  // namespace sluice::proxy
