// The upstream side on loopback: the connector's three outcomes (connected, refused, timed out),
// its retry on another endpoint with ejection, pool reuse, and the pool's probe of a connection
// the upstream closed while it was idle.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include "common/net.hpp"
#include "common/ready_wait.hpp"
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
    // Until the connect completes, not until the loop runs out of work: a pooled connection's
    // watch keeps the loop busy, and run_for(5s) then took the whole 5 s.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (fut.wait_for(0s) != std::future_status::ready &&
           std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_one_for(50ms);
    }
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
  Connector connector_{io_.get_executor(), pool_, rng_, 200ms};
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

// A pooled connection to a server that accepted it; the server end is returned too.
std::pair<ConnectionPtr, tcp::socket> pooledConnection(asio::io_context& io,
                                                       tcp::acceptor& listener,
                                                       std::uint32_t endpoint_id) {
  auto conn = std::make_shared<Connection>(io.get_executor(), endpoint_id);
  conn->socket.connect(listener.local_endpoint());
  return {conn, listener.accept()};
}

TEST(Pool, AnIdleConnectionThatGetsAByteOrEofIsClosedAtOnce) {
  asio::io_context io;
  tcp::acceptor listener(io, {asio::ip::address_v4::loopback(), 0});
  Pool pool(4);
  auto [stray, stray_server] = pooledConnection(io, listener, 7);
  auto [closed, closed_server] = pooledConnection(io, listener, 7);
  auto [quiet, quiet_server] = pooledConnection(io, listener, 7);
  const auto before = Pool::stats().closed_idle.load();
  for (auto* c : {&stray, &closed, &quiet}) {
    pool.release(*c, std::chrono::steady_clock::now());
  }
  EXPECT_EQ(pool.idleCount(), 3u);
  asio::write(stray_server, asio::buffer(std::string_view("HTTP/1.1 200 OK\r\n\r\n")));
  closed_server.close();
  io.run_for(200ms);
  io.restart();
  EXPECT_EQ(Pool::stats().closed_idle.load() - before, 2u);
  EXPECT_FALSE(stray->socket.is_open());
  EXPECT_FALSE(closed->socket.is_open());
  EXPECT_EQ(pool.idleCount(), 1u);
  ConnectionPtr got = pool.acquire(7);
  EXPECT_EQ(got, quiet) << "only the quiet connection is handed out";
  EXPECT_EQ(pool.acquire(7), nullptr);
  // Taken out, it is no longer watched: a byte now is the response to its next request.
  asio::write(quiet_server, asio::buffer(std::string_view("x")));
  io.run_for(100ms);
  EXPECT_TRUE(got->socket.is_open());
}

TEST(Pool, AStaleEdgeFromTheResponseDoesNotCloseAPooledConnection) {
  // The response's edge is collected in one epoll_wait(2) batch behind another socket's, whose
  // handler finds the response with a wait that looks (poll), reads it and pools the
  // connection. Reported after that, the edge completes the pool's watch with nothing to read:
  // the connection must stay pooled, and a FIN after that must still be seen.
  asio::io_context io{1};  // one thread, as a worker's
  tcp::acceptor listener(io, {asio::ip::address_v4::loopback(), 0});
  Pool pool(4);
  auto [conn, server] = pooledConnection(io, listener, 3);
  auto [other, other_server] = pooledConnection(io, listener, 4);
  conn->socket.non_blocking(true);
  ASSERT_TRUE(net::enableInqHint(conn->socket.native_handle()));  // as Connector does
  const auto before = Pool::stats().closed_idle.load();
  bool response_ready = false;
  other->socket.async_wait(tcp::socket::wait_read, [&, c = conn](boost::system::error_code) {
    net::waitReadable(c->socket, [&](boost::system::error_code ec) { response_ready = !ec; });
    std::array<char, 64> buf{};
    boost::system::error_code ec;
    EXPECT_GT(net::receiveNow(c->socket, asio::buffer(buf), ec), 0u);  // drained: marked
    pool.release(c, std::chrono::steady_clock::now());
  });
  io.run_for(20ms);  // the reactor takes the edges of the connects first
  io.restart();
  asio::write(other_server, asio::buffer(std::string_view("o")));
  asio::write(server, asio::buffer(std::string_view("HTTP/1.1 204 No Content\r\n\r\n")));
  std::this_thread::sleep_for(20ms);
  io.run_for(100ms);
  io.restart();
  EXPECT_TRUE(response_ready);
  EXPECT_TRUE(conn->socket.is_open());
  EXPECT_EQ(pool.idleCount(), 1u);
  EXPECT_EQ(Pool::stats().closed_idle.load(), before);
  server.close();
  io.run_for(200ms);
  EXPECT_FALSE(conn->socket.is_open()) << "the FIN after the stale edge was missed";
  EXPECT_EQ(Pool::stats().closed_idle.load() - before, 1u);
}

TEST(Pool, SweepClosesConnectionsIdleTooLongAndAFullPoolClosesTheRest) {
  asio::io_context io;
  tcp::acceptor listener(io, {asio::ip::address_v4::loopback(), 0});
  Pool pool(1);
  auto [a, a_server] = pooledConnection(io, listener, 1);
  auto [b, b_server] = pooledConnection(io, listener, 1);
  const auto t0 = std::chrono::steady_clock::now();
  pool.release(a, t0);
  pool.release(b, t0);  // over max_idle_per_endpoint: closed
  EXPECT_FALSE(b->socket.is_open());
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
