// The upstream side on loopback: the connector's three outcomes (connected, refused, timed out),
// its retry on another endpoint with ejection, pool reuse, and the pool's probe of a connection
// the upstream closed while it was idle.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>

#include "common/net.hpp"
#include "upstream/connector.hpp"
#include "upstream/pool.hpp"
#include "upstream/stats.hpp"

namespace sluice::upstream {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A listener whose accept queue is full: further SYNs are dropped, connects hang.
struct Blackhole {
  Blackhole() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd, 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    filler = ::socket(AF_INET, SOCK_STREAM, 0);
    ::connect(filler, reinterpret_cast<sockaddr*>(&addr), sizeof addr);  // fills the queue
  }
  ~Blackhole() {
    ::close(filler);
    ::close(fd);
  }
  int fd;
  int filler;
  std::uint16_t port;
};

class ConnectorTest : public ::testing::Test {
protected:
  ConnectorTest() : listener_(io_, {asio::ip::address_v4::loopback(), 0}) {}

  lb::EndpointPtr endpoint(std::uint16_t port) {
    return registry_.endpoint(model::Endpoint{"127.0.0.1", port, true});
  }
  ConnectResult connect(lb::Balancer& balancer, ConnectOptions options = {}) {
    auto fut = asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<std::optional<ConnectResult>> {
          co_return co_await connector_.connect(balancer, stats_, options);
        },
        asio::use_future);
    io_.run_for(5s);
    io_.restart();
    return std::move(*fut.get());
  }
  std::uint16_t livePort() const { return listener_.local_endpoint().port(); }
  // A port nothing listens on: connects are refused at once.
  std::uint16_t deadPort() {
    tcp::acceptor a(io_, {asio::ip::address_v4::loopback(), 0});
    return a.local_endpoint().port();
  }

  asio::io_context io_;
  tcp::acceptor listener_;
  Pool pool_{16};
  lb::Rng rng_{1};
  Connector connector_{io_.get_executor(), pool_, rng_, 200ms, 4096};
  ClusterStats stats_{"default/svc:80"};
  lb::Registry registry_;
};

TEST_F(ConnectorTest, ConnectsAndThenReusesThePooledConnection) {
  lb::Balancer balancer(model::LbPolicy::kRoundRobin, {endpoint(livePort())});
  ConnectResult first = connect(balancer);
  ASSERT_EQ(first.status, ConnectStatus::kConnected);
  EXPECT_FALSE(first.reused);
  ASSERT_NE(first.endpoint, nullptr);
  pool_.release(std::move(first.connection), std::chrono::steady_clock::now());
  ConnectResult second = connect(balancer);
  ASSERT_EQ(second.status, ConnectStatus::kConnected);
  EXPECT_TRUE(second.reused);
  ConnectResult fresh = connect(balancer, {.pooled = false});
  EXPECT_FALSE(fresh.reused);
}

TEST_F(ConnectorTest, ARefusedEndpointIsEjectedAndAnotherTried) {
  auto dead = endpoint(deadPort());
  lb::Balancer balancer(model::LbPolicy::kRoundRobin, {dead, endpoint(livePort())});
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(connect(balancer, {.pooled = false}).status, ConnectStatus::kConnected) << i;
  }
  EXPECT_EQ(stats_.connect_failures.load(), 1u) << "ejected after its first failure";
  EXPECT_EQ(stats_.retries.load(), 1u);
  EXPECT_TRUE(dead->ejected(net::monotonicNs()));
}

TEST_F(ConnectorTest, RefusedAndTimedOutAreTold) {
  lb::Balancer refused(model::LbPolicy::kRoundRobin, {endpoint(deadPort())});
  EXPECT_EQ(connect(refused).status, ConnectStatus::kRefused);
  Blackhole hole;
  lb::Balancer hanging(model::LbPolicy::kRoundRobin, {endpoint(hole.port)});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(connect(hanging).status, ConnectStatus::kTimedOut);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(Pool, AnIdleConnectionTheUpstreamClosedIsNotHandedOut) {
  asio::io_context io;
  tcp::acceptor listener(io, {asio::ip::address_v4::loopback(), 0});
  Pool pool(4);
  auto conn = std::make_unique<Connection>(io.get_executor(), 4096, 7);
  conn->socket.connect(listener.local_endpoint());
  tcp::socket server = listener.accept();
  conn->probe_before_reuse = true;  // probe even when just released
  pool.release(std::move(conn), std::chrono::steady_clock::now());
  EXPECT_EQ(pool.idleCount(), 1u);
  server.close();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(pool.acquire(7, std::chrono::steady_clock::now()), nullptr);
  EXPECT_EQ(pool.idleCount(), 0u);
}

TEST(Pool, SweepClosesConnectionsIdleTooLong) {
  asio::io_context io;
  tcp::acceptor listener(io, {asio::ip::address_v4::loopback(), 0});
  Pool pool(4);
  auto conn = std::make_unique<Connection>(io.get_executor(), 4096, 1);
  conn->socket.connect(listener.local_endpoint());
  const auto t0 = std::chrono::steady_clock::now();
  pool.release(std::move(conn), t0);
  EXPECT_EQ(pool.sweep(t0 + 1s, 30s), 0u);
  EXPECT_EQ(pool.sweep(t0 + 31s, 30s), 1u);
  EXPECT_EQ(pool.idleCount(), 0u);
}

TEST(Histogram, BucketsAndRenders) {
  StatsRegistry<ClusterStats> clusters;
  auto cs = clusters.get("ns/svc:80");
  cs->upstream_latency.observe(2ms);
  cs->upstream_latency.observe(20s);
  admin::MetricsWriter w;
  renderClusterMetrics(w, clusters);
  const std::string text = w.text();
  EXPECT_NE(
      text.find("sluice_upstream_latency_seconds_bucket{cluster=\"ns/svc:80\",le=\"0.0025\"} 1"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("sluice_upstream_latency_seconds_count{cluster=\"ns/svc:80\"} 2"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace sluice::upstream
