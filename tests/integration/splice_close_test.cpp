// Splice, every strategy: half-close each way, and a reset on either side ends the other promptly.
#include "splice_fixture.hpp"

namespace sluice::test {
namespace {

// ---- 3. half-close ---------------------------------------------------------------------------

TEST_P(Splice, HalfCloseFromClientStillCarriesTheReply) {
  constexpr std::uint64_t kBytes = 8 * kMiB;
  Once<StreamResult> backend_got;
  RawBackend backend(firstThenEcho([&](Socket& s) {
    StreamResult got = recvToEof(s.fd(), 15s);  // everything, then the client's FIN
    backend_got.set(got);
    if (got.ok) {
      sendAll(s.fd(), "reply-after-eof:" + got.sha);
    }
  }));  // returning closes: the client sees our FIN after the reply
  writeTcpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent(bulkArgs()));

  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  StreamResult sent = sendStream(c.fd(), 0xfeed, kBytes);
  ASSERT_TRUE(sent.ok) << sent.error;
  ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
  auto got = backend_got.wait(20s);
  ASSERT_TRUE(got) << "the backend never saw the client's FIN";
  StreamResult at_backend = *got;
  EXPECT_TRUE(at_backend.ok) << at_backend.error;
  EXPECT_EQ(at_backend.bytes, kBytes) << "bytes before the FIN were lost";
  EXPECT_EQ(at_backend.sha, sent.sha);

  std::string reply;
  const std::string want = "reply-after-eof:" + sent.sha;
  EXPECT_TRUE(recvExact(c.fd(), reply, want.size(), 10s)) << "got: " << reply;
  EXPECT_EQ(reply, want);
  std::size_t extra = 0;
  EXPECT_EQ(waitPeerClosed(c.fd(), 10s, &extra), ReadEnd::kEof);
  EXPECT_EQ(extra, 0u);
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 0, 5s), 0);
}

TEST_P(Splice, HalfCloseFromBackendStillCarriesTheReply) {
  constexpr std::uint64_t kBytes = 8 * kMiB;
  Once<std::string> backend_got;
  Once<StreamResult> backend_sent;
  RawBackend backend(firstThenEcho([&](Socket& s) {
    StreamResult sent = sendStream(s.fd(), 0xbeef, kBytes);
    ::shutdown(s.fd(), SHUT_WR);
    backend_sent.set(sent);
    // Our direction is closed; the client's still carries its answer, then its FIN.
    std::string got;
    char buf[4096];
    for (;;) {
      pollfd p{s.fd(), POLLIN, 0};
      if (::poll(&p, 1, 15'000) <= 0) {
        got += "<timeout>";
        break;
      }
      ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
      if (n == 0) {
        got += "<eof>";
        break;
      }
      if (n < 0) {
        got += "<error " + std::string(std::strerror(errno)) + ">";
        break;
      }
      got.append(buf, static_cast<std::size_t>(n));
    }
    backend_got.set(got);
  }));
  writeTcpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent(bulkArgs()));

  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  StreamResult got = recvToEof(c.fd(), 15s);
  auto sent_future = backend_sent.wait(20s);
  ASSERT_TRUE(sent_future);
  StreamResult sent = *sent_future;
  ASSERT_TRUE(sent.ok) << sent.error;
  EXPECT_TRUE(got.ok) << "client never saw the backend's FIN: " << got.error;
  EXPECT_EQ(got.bytes, kBytes);
  EXPECT_EQ(got.sha, sent.sha);

  const std::string answer = "reply-after-backend-eof:" + got.sha;
  EXPECT_TRUE(sendAll(c.fd(), answer, 5s)) << std::strerror(errno);
  ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
  auto at_backend = backend_got.wait(20s);
  ASSERT_TRUE(at_backend);
  EXPECT_EQ(*at_backend, answer + "<eof>");
  EXPECT_EQ(waitPeerClosed(c.fd(), 5s), ReadEnd::kEof);
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 0, 5s), 0);
}

// ---- 4. backend reset mid-stream -------------------------------------------------------------

// Streams (non-blocking, both ways) until the peer ends the connection; returns how it ended.
ReadEnd streamUntilClosed(int fd, std::chrono::milliseconds timeout, Clock::time_point* when) {
  setNonBlocking(fd, true);
  ByteStream bytes(42);
  std::string out(64 * 1024, '\0');
  bytes.fill(out.data(), out.size());
  std::string in(1 << 16, '\0');
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN | POLLOUT, 0};
    ::poll(&p, 1, 20);
    ssize_t r = ::recv(fd, in.data(), in.size(), 0);
    if (r == 0) {
      *when = Clock::now();
      return ReadEnd::kEof;
    }
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      *when = Clock::now();
      return errno == ECONNRESET ? ReadEnd::kReset : ReadEnd::kError;
    }
    ssize_t w = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      *when = Clock::now();
      return errno == ECONNRESET || errno == EPIPE ? ReadEnd::kReset : ReadEnd::kError;
    }
    if (p.revents & (POLLHUP | POLLERR)) {
      // Reported by the next recv/send; keep looping.
    }
  }
  return ReadEnd::kTimeout;
}

TEST_P(Splice, BackendResetWhileClientSendsEndsTheClientPromptly) {
  Once<Clock::time_point> reset_at;
  RawBackend backend(firstThenEcho([&](Socket& s) {
    std::string got;
    recvExact(s.fd(), got, kMiB, 20s);  // the flow is busy
    reset_at.set(Clock::now());
    s.resetClose();
  }));
  writeTcpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent(bulkArgs()));

  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  Clock::time_point ended{};
  ReadEnd how = streamUntilClosed(c.fd(), 25s, &ended);
  auto reset = reset_at.wait(1s);
  ASSERT_TRUE(reset) << "the backend never got 1 MiB";
  const auto at = *reset;
  ASSERT_NE(how, ReadEnd::kTimeout) << "the client never saw the backend's reset";
  EXPECT_LT(ended - at, kResetBound)
      << "client saw " << readEndName(how) << " after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(ended - at).count() << " ms";
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 0, 5s), 0);
  std::cout << "[ info ] " << GetParam() << ": held " << stateCounter("held") << "\n";
  expectAgentAlive();
  expectTcpRouteEchoes();
}

TEST_P(Splice, BackendResetWhileBackendSendsEndsTheClientPromptly) {
  Once<Clock::time_point> reset_at;
  RawBackend backend(firstThenEcho([&](Socket& s) {
    sendStream(s.fd(), 9, 4 * kMiB);
    reset_at.set(Clock::now());
    s.resetClose();
  }));
  writeTcpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent(bulkArgs()));

  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  // The client only reads.
  std::size_t drained = 0;
  ReadEnd how = waitPeerClosed(c.fd(), 25s, &drained);
  const auto ended = Clock::now();
  auto reset = reset_at.wait(1s);
  ASSERT_TRUE(reset) << "the backend never sent 4 MiB";
  const auto at = *reset;
  ASSERT_NE(how, ReadEnd::kTimeout)
      << "the client never saw the backend's reset (read " << drained << " bytes)";
  EXPECT_LT(ended - at, kResetBound);
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 0, 5s), 0);
  std::cout << "[ info ] " << GetParam() << ": held " << stateCounter("held") << "\n";
  expectAgentAlive();
  expectTcpRouteEchoes();
}

// ---- 5. client disappears mid-stream ---------------------------------------------------------

TEST_P(Splice, ClientResetClosesTheBackendPromptly) {
  Once<std::pair<ReadEnd, Clock::time_point>> backend_end;
  RawBackend backend(firstThenEcho([&](Socket& s) {
    Clock::time_point when{};
    ReadEnd how = streamUntilClosed(s.fd(), 25s, &when);
    backend_end.set({how, when});
  }));
  writeTcpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent(bulkArgs()));

  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(sendAll(c.fd(), ByteStream(3).take(kMiB)));
  std::string got;
  ASSERT_TRUE(recvExact(c.fd(), got, kMiB, 10s)) << "the backend's stream does not arrive";
  const auto reset_at = Clock::now();
  c.resetClose();
  auto end = backend_end.wait(25s);
  ASSERT_TRUE(end);
  auto [how, when] = *end;
  ASSERT_NE(how, ReadEnd::kTimeout) << "the backend connection stayed open";
  EXPECT_LT(when - reset_at, kResetBound)
      << "backend saw " << readEndName(how) << " after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(when - reset_at).count() << " ms";
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 0, 5s), 0);
  std::cout << "[ info ] " << GetParam() << ": held " << stateCounter("held") << "\n";
  expectAgentAlive();
  expectTcpRouteEchoes();
}

}  // namespace
}  // namespace sluice::test
