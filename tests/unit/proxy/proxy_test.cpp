// The pure parts of proxy/: the agent's own replies, the snapshot holder, and the watchdog's
// single deadline.
#include <chrono>
#include <string>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/local_reply.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/stats.hpp"
#include "proxy/watchdog.hpp"

namespace sluice::proxy {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

TEST(LocalReply, EveryReplyIsAWholeResponseWithItsStatus) {
  for (std::size_t i = 0; i < static_cast<std::size_t>(LocalReply::kCount); ++i) {
    const auto reply = static_cast<LocalReply>(i);
    for (bool close : {false, true}) {
      const std::string_view bytes = localReply(reply, close);
      EXPECT_TRUE(bytes.starts_with("HTTP/1.1 " + std::to_string(statusOf(reply)) + " ")) << bytes;
      const auto head_end = bytes.find("\r\n\r\n");
      ASSERT_NE(head_end, std::string_view::npos);
      const auto cl = bytes.find("Content-Length: ");
      ASSERT_NE(cl, std::string_view::npos) << bytes;
      EXPECT_EQ(std::stoul(std::string(bytes.substr(cl + 16))), bytes.size() - head_end - 4);
      EXPECT_EQ(bytes.find("Connection: close") != std::string_view::npos, close) << bytes;
    }
  }
}

TEST(SnapshotHolder, ReadersSeeTheLastPublishedGeneration) {
  SnapshotHolder holder;
  EXPECT_EQ(holder.load(), nullptr);
  auto s = std::make_shared<Snapshot>();
  s->generation = 3;
  s->tcp_routes = {{9000, 1}, {9001, 0}};
  holder.publish(s);
  EXPECT_EQ(holder.generation(), 3u);
  EXPECT_EQ(holder.load()->tcpCluster(9001), 0u);
  EXPECT_EQ(holder.load()->tcpCluster(80), kNoTcpRoute);
}

TEST(Watchdog, ExpiryCancelsTheWatchedSocketAndIsReportedOnce) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  Watchdog dog(io.get_executor());
  dog.watch(Watchdog::kClient, &client);
  boost::system::error_code read_ec;
  bool timed_out = false;
  auto owner = std::make_shared<int>(0);
  std::weak_ptr<int> held = owner;
  bool held_while_open = false;
  dog.start(std::move(owner));  // the pending wait holds the owner until close()
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        dog.arm(10s);
        dog.arm(50ms);  // an earlier deadline replaces the later one
        char byte;
        auto [ec, n] = co_await client.async_read_some(asio::buffer(&byte, 1),
                                                       asio::as_tuple(asio::use_awaitable));
        read_ec = ec;
        timed_out = dog.takeTimeout();
        held_while_open = !held.expired();
        dog.close();
      },
      asio::detached);
  const auto start = std::chrono::steady_clock::now();
  io.run_for(5s);
  EXPECT_EQ(read_ec, asio::error::operation_aborted);
  EXPECT_TRUE(timed_out);
  EXPECT_FALSE(dog.takeTimeout()) << "reported twice";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(held_while_open) << "the watchdog must keep its session alive";
  EXPECT_TRUE(held.expired()) << "close() must let the session go";
}

TEST(GlobalStats, RendersRepliesAndParseErrorsByLabel) {
  globalStats().localReply(LocalReply::k404);
  bump(globalStats().parse_errors[static_cast<std::size_t>(http::ParseError::kBadMethod)]);
  admin::MetricsWriter w;
  renderGlobalMetrics(w);
  const std::string text = w.text();
  EXPECT_NE(text.find("sluice_local_replies_total{code=\"404\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("sluice_request_parse_errors_total{reason=\"bad_method\"} 1\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace sluice::proxy
