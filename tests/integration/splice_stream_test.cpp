// Splice, every strategy: the strategy is visible; a 1 GiB TCP route and 1,000 Upgrade flows
// arrive intact.
#include "splice_fixture.hpp"

namespace sluice::test {
namespace {

// ---- 0. the strategy is visible --------------------------------------------------------------

TEST_P(Splice, StateAndMetricsNameTheStrategy) {
  RawBackend echo(echoHandler);
  writeTcpRoute(echo.port());
  ASSERT_NO_FATAL_FAILURE(startAgent());
  auto state = spliceState(agent_->adminPort());
  ASSERT_TRUE(state);
  EXPECT_EQ(stateString(*state, "requested"), GetParam()) << json::serialize(*state);
  // Bodies: splice(2) for every strategy but copy.
  EXPECT_EQ(stateString(*state, "body_strategy"), GetParam() == "copy" ? "copy" : "pipe")
      << json::serialize(*state);
  EXPECT_FALSE(stateString(*state, "reason").empty()) << json::serialize(*state);
  EXPECT_EQ(stateNumber(*state, "fallbacks"), 0) << json::serialize(*state);
  EXPECT_EQ(stateNumber(*state, "held"), 0) << json::serialize(*state);
  EXPECT_EQ(stateNumber(*state, "upgraded"), 0) << json::serialize(*state);

  const double before = flowsTotal();
  // One flow with traffic, kept open.
  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(sendAll(c.fd(), "ping"));
  std::string got;
  ASSERT_TRUE(recvExact(c.fd(), got, 4, 5s));
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 1, 3s), 1);
  EXPECT_EQ(metric(agent_->adminPort(), "sluice_splice_active_flows"), 1);
  const double after = flowsTotal();
  EXPECT_GE(before, 0) << "no sluice_splice_flows_total{strategy=\"" << strategyName() << "\"}";
  EXPECT_GE(after, before + 1);
  EXPECT_GE(metric(agent_->adminPort(), "sluice_splice_fallbacks_total"), 0)
      << "no sluice_splice_fallbacks_total";
  EXPECT_EQ(metric(agent_->adminPort(), "sluice_splice_held_total"), 0)
      << "no sluice_splice_held_total, or a 4-byte flow was held";
  EXPECT_EQ(metric(agent_->adminPort(), "sluice_splice_upgraded_total"), 0)
      << "no sluice_splice_upgraded_total, or a 4-byte flow was moved to pipe";
  // /debug/flows lists the live flow under the same strategy name; an adaptive flow says which
  // relay each direction uses, and 4 bytes each way stay on copy.
  {
    boost::system::error_code ec;
    const std::string body = httpGet(agent_->adminPort(), "/debug/flows");
    json::value flows = json::parse(body, ec);
    ASSERT_FALSE(ec) << body;
    ASSERT_TRUE(flows.is_array()) << body;
    ASSERT_EQ(flows.as_array().size(), 1u) << body;
    const auto& row = flows.as_array().at(0).as_object();
    EXPECT_EQ(stateString(row, "strategy"),
              GetParam() == "auto" ? "adaptive(up:copy,down:copy)" : strategyName())
        << body;
    EXPECT_EQ(stateString(row, "client"), localAddress(c.fd())) << body;
    EXPECT_EQ(stateNumber(row, "bytes_in"), 4) << body;
    EXPECT_EQ(stateNumber(row, "bytes_out"), 4) << body;
  }
  c.close();
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 0, 5s), 0);
}

// ---- 1. bulk TCP route -----------------------------------------------------------------------

TEST_P(Splice, TcpRouteMovesOneGibEachWayIntact) {
  constexpr std::uint64_t kBytes = 1ULL << 30;
  constexpr std::uint64_t kUpSeed = 0x5eed0001, kDownSeed = 0x5eed0002;
  Once<std::pair<StreamResult, StreamResult>> backend_done;  // (received, sent)
  RawBackend backend(firstThenEcho([&](Socket& s) {
    std::future<StreamResult> sent =
        std::async(std::launch::async, [&] { return sendStream(s.fd(), kDownSeed, kBytes); });
    StreamResult got = recvStream(s.fd(), kBytes, kUpSeed);
    StreamResult out = sent.get();
    backend_done.set({got, out});
    // Our FIN after both directions are done; then wait for the client's.
    ::shutdown(s.fd(), SHUT_WR);
    waitPeerClosed(s.fd(), 30s);
  }));
  writeTcpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent(bulkArgs()));

  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  const auto start = Clock::now();
  std::future<StreamResult> up =
      std::async(std::launch::async, [&] { return sendStream(c.fd(), kUpSeed, kBytes); });
  StreamResult down = recvStream(c.fd(), kBytes, kDownSeed);
  StreamResult sent_up = up.get();
  const auto elapsed = since(start);
  auto done = backend_done.wait(30s);
  ASSERT_TRUE(done) << "backend never finished";
  auto [backend_got, backend_sent] = *done;

  // The known 6.18 defect (docs/splice.md, "The plain redirect path duplicated too"): with other
  // loopback traffic beside the flow, the kernel's redirect path can hand a segment over twice.
  // What Sluice guarantees then is that the relay detects it and resets the flow, so no end sees
  // a complete stream; the transfer itself cannot be judged, and the test says so.
  if (GetParam() == "sockmap") {
    auto s = spliceState(agent_->adminPort());
    if (s && stateNumber(*s, "integrity_resets") > 0) {
      EXPECT_TRUE(down.bytes < kBytes || backend_got.bytes < kBytes)
          << "duplication was detected, yet both streams ended complete";
      if (!HasFailure()) {
        GTEST_SKIP() << "the kernel duplicated a segment (known 6.18 defect, docs/splice.md); "
                        "the relay detected it and reset the flow, as designed";
      }
      return;
    }
  }

  EXPECT_TRUE(sent_up.ok) << sent_up.error;
  EXPECT_TRUE(backend_sent.ok) << backend_sent.error;
  EXPECT_TRUE(backend_got.ok) << "client→backend: " << backend_got.error;
  EXPECT_TRUE(down.ok) << "backend→client: " << down.error;
  EXPECT_EQ(backend_got.bytes, kBytes);
  EXPECT_EQ(down.bytes, kBytes);
  // sockmap: bytes_in/bytes_out of the flow in the info line below are what the verdict
  // redirected; more than 1073741824 means it ran twice over some bytes.
  EXPECT_EQ(backend_got.sha, sent_up.sha)
      << "client→backend bytes differ: " << describeMismatch(backend_got, kUpSeed);
  EXPECT_EQ(down.sha, backend_sent.sha)
      << "backend→client bytes differ: " << describeMismatch(down, kDownSeed);
  // Nothing extra follows: the backend's FIN comes next.
  std::size_t extra = 0;
  EXPECT_EQ(waitPeerClosed(c.fd(), 10s, &extra), ReadEnd::kEof);
  EXPECT_EQ(extra, 0u);
  // The client has not closed yet, so the flow is still listed: under auto both directions
  // streamed and were moved from copy to splice(2).
  const std::string flows = httpGet(agent_->adminPort(), "/debug/flows");
  auto state = spliceState(agent_->adminPort());
  ASSERT_TRUE(state);
  std::cout << "[ info ] " << GetParam() << ": 1 GiB each way in " << elapsed.count()
            << " ms; held " << stateNumber(*state, "held") << ", upgraded "
            << stateNumber(*state, "upgraded") << ", fallbacks " << stateNumber(*state, "fallbacks")
            << "; flows " << flows << "\n";
  EXPECT_EQ(stateNumber(*state, "fallbacks"), 0);
  EXPECT_EQ(stateNumber(*state, "held"), 0) << "a bulk flow was held (and reset)";
  if (GetParam() == "auto") {
    EXPECT_EQ(stateNumber(*state, "upgraded"), 2) << "both bulk directions move to splice(2)";
    EXPECT_EQ(metric(agent_->adminPort(), "sluice_splice_upgraded_total"), 2);
    EXPECT_NE(flows.find("\"adaptive(up:pipe,down:pipe)\""), std::string::npos) << flows;
  } else {
    EXPECT_EQ(stateNumber(*state, "upgraded"), 0);
  }
  EXPECT_EQ(flowsTotal(), 1);
}

// ---- 2. WebSocket-style Upgrade, 1,000 concurrent flows --------------------------------------

TEST_P(Splice, ThousandConcurrentUpgradedFlowsEchoIntact) {
  constexpr int kFlows = 1000;
  constexpr int kFrames = 20;
  RawBackend ws(upgradeEchoHandler("server-early:"));
  writeHttpRoute(ws.port());
  ASSERT_NO_FATAL_FAILURE(startAgent());

  const auto start = Clock::now();
  std::vector<Socket> conns;
  conns.reserve(kFlows);
  for (int i = 0; i < kFlows; ++i) {
    Socket c = connectLoopback(agent_->port());
    ASSERT_TRUE(c.valid()) << "connect " << i << ": " << std::strerror(errno);
    // Bytes right behind the request head belong to the new protocol.
    const std::string req = "GET /ws/" + std::to_string(i) +
                            " HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\n"
                            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                            "client-early:" +
                            std::to_string(i) + "\n";
    ASSERT_TRUE(sendAll(c.fd(), req, 10s)) << i;
    conns.push_back(std::move(c));
  }
  const auto connected = since(start);
  int bad_heads = 0;
  for (int i = 0; i < kFlows; ++i) {
    auto head = recvUntil(conns[i].fd(), "\r\n\r\n", 20s);
    ASSERT_TRUE(head) << "flow " << i << ": no response head";
    if (head->rfind("HTTP/1.1 101", 0) != 0) {
      ADD_FAILURE() << "flow " << i << ": " << head->substr(0, head->find("\r\n"));
      if (++bad_heads > 5) {
        FAIL() << "giving up";
      }
      continue;
    }
    std::string rest = head->substr(head->find("\r\n\r\n") + 4);
    // What the backend sent right behind its 101, then the echo of the client's early bytes.
    const std::string want =
        "server-early:/ws/" + std::to_string(i) + "\nclient-early:" + std::to_string(i) + "\n";
    if (rest.size() < want.size()) {
      recvExact(conns[i].fd(), rest, want.size() - rest.size(), 10s);
    }
    ASSERT_EQ(rest, want) << "flow " << i << ": bytes behind the heads";
  }
  const auto upgraded = since(start);
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), kFlows, 5s), kFlows);

  const auto frames_start = Clock::now();
  ByteStream sizes(7);
  for (int round = 0; round < kFrames; ++round) {
    std::vector<std::string> frames(kFlows);
    for (int i = 0; i < kFlows; ++i) {
      unsigned char len = 0;
      sizes.fill(&len, 1);
      const std::size_t payload = 2 + len % 125;  // 2..126 bytes
      ByteStream content(static_cast<std::uint64_t>(i) * 1000 + static_cast<std::uint64_t>(round));
      frames[i] = std::string{'\x82', static_cast<char>(payload)} + content.take(payload);
      ASSERT_TRUE(sendAll(conns[i].fd(), frames[i], 10s)) << "flow " << i << " round " << round;
    }
    for (int i = 0; i < kFlows; ++i) {
      std::string got;
      ASSERT_TRUE(recvExact(conns[i].fd(), got, frames[i].size(), 20s))
          << "flow " << i << " round " << round << ": got " << got.size() << " of "
          << frames[i].size();
      ASSERT_EQ(got, frames[i]) << "flow " << i << " round " << round;
    }
  }
  std::cout << "[ info ] " << GetParam() << ": " << kFlows << " upgrades sent in "
            << connected.count() << " ms, all 101s in " << upgraded.count() << " ms, " << kFrames
            << " echo rounds in " << since(frames_start).count() << " ms\n";
  EXPECT_GE(flowsTotal(), kFlows);
  // Messages of at most 128 bytes never fill a 16 KiB read: no adaptive direction streams.
  EXPECT_EQ(stateCounter("upgraded"), 0) << "small-frame directions were moved to splice(2)";
  EXPECT_EQ(stateCounter("held"), 0);
  conns.clear();
  EXPECT_TRUE(ws.waitIdle(10s)) << ws.active() << " backend connections still open";
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 0, 10s), 0);
  expectAgentAlive();
}

INSTANTIATE_TEST_SUITE_P(Strategies, Splice, ::testing::Values("sockmap", "pipe", "copy", "auto"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sluice::test
