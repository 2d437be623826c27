// net::waitReadable(), net::markDrained() and net::readWithHint() on real loopback TCP sockets,
// with the real epoll reactor: a wait must never miss bytes or a FIN, and after a drained read it
// must be queued without looking at the socket.
#include "common/ready_wait.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <optional>
#include <string_view>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/net.hpp"

namespace sluice::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

class ReadyWaitTest : public ::testing::Test {
protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_);
    ASSERT_TRUE(net::listen(acceptor, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), {}));
    peer_.connect(acceptor.local_endpoint());
    acceptor.accept(server_);
    server_.non_blocking(true);
  }

  // Runs the io_context until `done` or for `limit`: enough for loopback bytes to arrive.
  void runFor(const std::optional<error_code>& done, std::chrono::milliseconds limit = 200ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < end) {
      io_.restart();
      io_.run_for(5ms);
    }
  }

  void send(std::string_view bytes) { asio::write(peer_, asio::buffer(bytes)); }
  // Sends `bytes` and lets them reach the server's receive queue.
  void arrive(std::string_view bytes) {
    send(bytes);
    std::this_thread::sleep_for(20ms);
  }
  // Starts a waitReadable() on the server's socket whose result lands in `slot`.
  void startWait(std::optional<error_code>& slot) {
    waitReadable(server_, [&slot](error_code ec) { slot = ec; });
  }

  // Reads what is there through receiveNow() (which marks the socket drained when it is).
  std::size_t drain() {
    std::array<char, 4096> buf{};
    error_code ec;
    const std::size_t n = receiveNow(server_, asio::buffer(buf), ec);
    return ec ? 0 : n;
  }

  asio::io_context io_{1};
  // Keeps run_for() in the reactor even with no operation queued, so that it sees edges.
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  tcp::socket peer_{io_};
  tcp::socket server_{io_};
};

TEST_F(ReadyWaitTest, ReadWithHintSaysDrainedOnlyWhenNothingAndNoFinIsLeft) {
  std::array<char, 64> buf{};
  bool drained = true;
  EXPECT_EQ(readWithHint(server_.native_handle(), buf.data(), buf.size(), drained), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_TRUE(drained) << "nothing to read is drained";

  arrive("hello");
  EXPECT_EQ(readWithHint(server_.native_handle(), buf.data(), 3, drained), 3);
  EXPECT_FALSE(drained) << "two bytes are left";
  EXPECT_EQ(readWithHint(server_.native_handle(), buf.data(), buf.size(), drained), 2);
  EXPECT_TRUE(drained) << "TCP_INQ, inherited from the listener, said 0";

  send("bye");
  peer_.shutdown(tcp::socket::shutdown_send);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(readWithHint(server_.native_handle(), buf.data(), buf.size(), drained), 3);
  EXPECT_FALSE(drained) << "a FIN is behind the bytes";
  EXPECT_EQ(readWithHint(server_.native_handle(), buf.data(), buf.size(), drained), 0);
  EXPECT_FALSE(drained);
}

TEST_F(ReadyWaitTest, ReadWithHintWithoutTcpInqKnowsOnlyNothingToRead) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  std::array<char, 8> buf{};
  bool drained = true;
  EXPECT_EQ(readWithHint(fds[0], buf.data(), buf.size(), drained), 1);
  EXPECT_FALSE(drained) << "no TCP_INQ: unknown, so not drained";
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_F(ReadyWaitTest, CompletesAtOnceWhenBytesAreAlreadyThere) {
  arrive("GET");
  std::optional<error_code> done;
  startWait(done);
  runFor(done);
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
}

TEST_F(ReadyWaitTest, CompletesWhenBytesArriveAfterADrainedRead) {
  arrive("first");
  ASSERT_EQ(drain(), 5u);
  std::optional<error_code> done;
  startWait(done);
  runFor(done, 50ms);
  EXPECT_FALSE(done) << "nothing came yet";
  send("second");
  runFor(done);
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
  EXPECT_EQ(drain(), 6u);
}

TEST_F(ReadyWaitTest, BytesThatArriveBetweenTheDrainedReadAndTheWaitAreNotMissed) {
  arrive("first");
  ASSERT_EQ(drain(), 5u);  // marked drained
  arrive("second");        // its edge is reported by the next epoll_wait
  std::optional<error_code> done;
  startWait(done);
  runFor(done);
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
}

TEST_F(ReadyWaitTest, AnEventSeenBeforeTheWaitMakesItLook) {
  arrive("first");
  ASSERT_EQ(drain(), 5u);
  arrive("second");
  // The reactor reports the edge while no wait is queued: it may no longer trust the mark, and
  // the wait must find the bytes by looking.
  runFor(std::nullopt, 20ms);
  std::optional<error_code> done;
  startWait(done);
  runFor(done);
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
}

TEST_F(ReadyWaitTest, AFinBehindTheLastBytesIsNotMissed) {
  send("last");
  peer_.shutdown(tcp::socket::shutdown_send);
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(drain(), 4u);  // TCP_INQ said 1: not marked
  std::optional<error_code> done;
  startWait(done);
  runFor(done);
  ASSERT_TRUE(done) << "the FIN arrived with the bytes, before the read: no edge will follow";
  EXPECT_FALSE(*done);
  std::array<char, 8> buf{};
  error_code ec;
  receiveNow(server_, asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(ReadyWaitTest, AfterADrainedMarkTheWaitDoesNotLook) {
  // The contract, made visible: marked drained, the wait trusts the mark and is queued without a
  // look, so bytes that were (against the contract) already there wake it only with a new edge.
  // A wait that looked (a poll, or async_wait's epoll_ctl) would complete at once.
  arrive("early");
  runFor(std::nullopt, 20ms);  // the reactor has seen the edge; no wait was queued
  markDrained(server_);
  std::optional<error_code> done;
  startWait(done);
  runFor(done, 50ms);
#if SLUICE_READY_WAIT
  EXPECT_FALSE(done) << "the wait looked at the socket";
  send("!");  // a new edge
  runFor(done);
#endif
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
}

TEST_F(ReadyWaitTest, AStaleEdgeCompletesAWaitWithNothingToRead) {
  // Why callers check (net::waitReadable()): an edge the reactor collected in the same
  // epoll_wait(2) batch as another socket's, and reports after that socket's handler has looked
  // (a wait that polled) and read the bytes, completes the next wait with nothing there.
  tcp::acceptor acceptor(io_);
  ASSERT_TRUE(net::listen(acceptor, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), {}));
  tcp::socket other_peer(io_);
  tcp::socket other(io_);
  other_peer.connect(acceptor.local_endpoint());
  acceptor.accept(other);
  std::optional<error_code> first;
  std::optional<error_code> second;
  other.async_wait(tcp::socket::wait_read, [&](error_code) {
    startWait(first);        // looks: ready, posted
    EXPECT_EQ(drain(), 1u);  // marked drained
    startWait(second);       // queued without a look
  });
  runFor(std::nullopt, 20ms);  // the reactor takes the edges of the connect first
  asio::write(other_peer, asio::buffer(std::string_view("o")));  // its edge first in the batch
  arrive("x");
  runFor(second);
  ASSERT_TRUE(first);
  ASSERT_TRUE(second) << "no stale edge: the batch did not have both";
  EXPECT_FALSE(*second);
  EXPECT_FALSE(readableNow(server_.native_handle()));
  // The edge is spent: the next wait sees only new bytes.
  std::optional<error_code> third;
  startWait(third);
  runFor(third, 50ms);
  EXPECT_FALSE(third);
  send("y");
  runFor(third);
  EXPECT_TRUE(third);
}

TEST_F(ReadyWaitTest, CancelAndCloseAbortAQueuedWait) {
  std::optional<error_code> done;
  startWait(done);
  runFor(done, 20ms);
  ASSERT_FALSE(done);
  server_.cancel();
  runFor(done);
  ASSERT_TRUE(done);
  EXPECT_EQ(*done, asio::error::operation_aborted);

  done.reset();
  startWait(done);
  server_.close();
  runFor(done);
  ASSERT_TRUE(done);
  EXPECT_EQ(*done, asio::error::operation_aborted);
}

TEST_F(ReadyWaitTest, WorksInACoroutineAndWithAnAllocator) {
  std::optional<error_code> done;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        auto [ec] = co_await waitReadable(server_, asio::as_tuple(asio::use_awaitable));
        done = ec;
      },
      asio::detached);
  runFor(done, 20ms);
  EXPECT_FALSE(done);
  send("x");
  runFor(done);
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
  ASSERT_EQ(drain(), 1u);

  std::optional<error_code> again;
  waitReadable(server_,
               asio::bind_allocator(std::allocator<void>{}, [&](error_code ec) { again = ec; }));
  send("y");
  runFor(again);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
}

TEST_F(ReadyWaitTest, AsioReadsAfterADrainedMarkStillSeeNewBytes) {
  arrive("abc");
  ASSERT_EQ(drain(), 3u);
  std::array<char, 16> buf{};
  std::optional<error_code> done;
  std::size_t got = 0;
  server_.async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t n) {
    done = ec;
    got = n;
  });
  runFor(done, 30ms);
  EXPECT_FALSE(done);
  send("defg");
  runFor(done);
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
  EXPECT_EQ(got, 4u);
}

}  // namespace
}  // namespace sluice::net
