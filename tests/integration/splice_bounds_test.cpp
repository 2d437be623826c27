// Splice, every strategy: a peer that never reads bounds what the other side can push; 10,000
// short flows leave nothing behind.
#include "splice_fixture.hpp"

namespace sluice::test {
namespace {

// ---- 6. a peer that never reads --------------------------------------------------------------
//
// pipe, copy, auto: TCP flow control stops the sender under kPushBound, and once the reader
// resumes, everything pushed, and more, arrives intact.
// sockmap: past the flow budget the agent resets the flow. The sender is stopped by that reset
// under kPushBound, and the reader, resuming, gets an intact prefix of the stream and then the
// reset (or EOF) within kResetBound; the route keeps working for new flows.

// What a reader of a reset flow must have seen: EOF or a reset (not a stall), after an intact
// prefix of ByteStream(seed) no longer than what was pushed.
void expectIntactPrefixThenReset(const StreamResult& got, std::uint64_t seed, std::uint64_t pushed,
                                 const char* who) {
  EXPECT_TRUE(got.ok || got.error == std::string("recv: ") + std::strerror(ECONNRESET))
      << who << ": " << got.error;
  EXPECT_LE(got.bytes, pushed) << who;
  EXPECT_EQ(got.sha, streamSha256(seed, got.bytes))
      << who << ": the " << got.bytes << " bytes before the reset are not the stream's prefix";
}

// Shared between a stalled backend and the test: the backend waits for `resume`, then reads until
// EOF (or a stall of `stall`) and reports the digest.
struct StalledReader {
  std::atomic<bool> resume{false};
  std::chrono::milliseconds stall{30s};
  Once<StreamResult> result;
  void waitResume(std::chrono::milliseconds cap) {
    const auto end = Clock::now() + cap;
    while (!resume && Clock::now() < end) {
      std::this_thread::sleep_for(10ms);
    }
  }
};

TEST_P(Splice, SlowBackendBoundsWhatTheClientCanPush) {
  // An explicit budget, so a sockmap flow is reset well before the bound.
  constexpr std::uint64_t kBudget = 8 * kMiB;
  constexpr std::uint64_t kSeed = 0x51041;
  auto stalled = std::make_shared<StalledReader>();
  if (sockmap()) {
    stalled->stall = kResetBound;
  }
  RawBackend backend(firstThenEcho([stalled](Socket& s) {
    stalled->waitResume(60s);
    stalled->result.set(recvToEof(s.fd(), stalled->stall));
  }));
  SetOnExit release{stalled->resume};  // a failing test never leaves the handler waiting
  writeTcpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent({"--splice-flow-budget", std::to_string(kBudget)}));

  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(backend.waitAccepted(1, 5s));
  Pusher pusher(kSeed);
  PushResult push = pusher.pushUntilStalled(c.fd(), 512 * kMiB, 2s, 25s);
  ASSERT_NO_FATAL_FAILURE(
      expectBounded(push, "client into a never-reading backend", {tcp_port_, backend.port()}));
  stalled->resume = true;
  if (sockmap()) {
    expectResetPastBudget(push, kBudget);
    auto got = stalled->result.wait(kResetBound + 1s);
    ASSERT_TRUE(got) << "the backend saw neither the reset nor EOF";
    expectIntactPrefixThenReset(*got, kSeed, push.accepted, "backend");
    expectTcpRouteEchoes();
    return;
  }
  // The backend starts reading: everything pushed, and more, arrives in order.
  ASSERT_TRUE(pusher.sendMore(c.fd(), 16 * kMiB)) << std::strerror(errno);
  ::shutdown(c.fd(), SHUT_WR);
  auto got = stalled->result.wait(40s);
  ASSERT_TRUE(got);
  StreamResult at_backend = *got;
  EXPECT_TRUE(at_backend.ok) << at_backend.error;
  EXPECT_EQ(at_backend.bytes, pusher.sent());
  EXPECT_EQ(at_backend.sha, streamSha256(kSeed, pusher.sent()))
      << "bytes were lost, duplicated or reordered around the stall";
  EXPECT_EQ(stateCounter("held"), 0);
}

TEST_P(Splice, SlowClientBoundsWhatTheBackendCanPush) {
  // Default flags: the bound holds with the agent's own flow budget.
  constexpr std::uint64_t kSeed = 0x51042;
  Once<PushResult> pushed;
  std::atomic<bool> push_more{false};
  Once<std::uint64_t> total_sent;
  RawBackend backend(firstThenEcho([&](Socket& s) {
    Pusher pusher(kSeed);
    pushed.set(pusher.pushUntilStalled(s.fd(), 512 * kMiB, 2s, 25s));
    const auto end = Clock::now() + 60s;
    while (!push_more && Clock::now() < end) {
      std::this_thread::sleep_for(10ms);
    }
    pusher.sendMore(s.fd(), 16 * kMiB);  // fails at once on a reset flow
    total_sent.set(pusher.sent());
    ::shutdown(s.fd(), SHUT_WR);
    waitPeerClosed(s.fd(), 30s);
  }));
  SetOnExit release{push_more};
  writeTcpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent());
  const std::int64_t budget = stateCounter("flow_budget");
  ASSERT_GT(budget, 0);

  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  auto push_future = pushed.wait(40s);
  ASSERT_TRUE(push_future);
  PushResult push = *push_future;
  ASSERT_NO_FATAL_FAILURE(
      expectBounded(push, "backend to a never-reading client", {tcp_port_, backend.port()}));
  if (sockmap()) {
    expectResetPastBudget(push, static_cast<std::uint64_t>(budget));
    // The client, reading now, gets what was delivered before the reset, then the reset.
    StreamResult got = recvToEof(c.fd(), kResetBound);
    expectIntactPrefixThenReset(got, kSeed, push.accepted, "client");
    push_more = true;
    expectTcpRouteEchoes();
    return;
  }
  push_more = true;
  StreamResult got = recvToEof(c.fd(), 30s);
  auto total = total_sent.wait(40s);
  ASSERT_TRUE(total);
  const std::uint64_t sent = *total;
  EXPECT_TRUE(got.ok) << got.error;
  EXPECT_EQ(got.bytes, sent);
  EXPECT_EQ(got.sha, streamSha256(kSeed, sent))
      << "bytes were lost, duplicated or reordered around the stall";
  EXPECT_EQ(stateCounter("held"), 0);
}

// ---- 7. churn --------------------------------------------------------------------------------

TEST_P(Splice, TenThousandShortFlowsLeaveNothingBehind) {
  constexpr int kThreads = 50;
  constexpr int kPerThread = 200;
  RawBackend echo(echoHandler);
  writeTcpRoute(echo.port());
  ASSERT_NO_FATAL_FAILURE(startAgent());

  std::atomic<int> failures{0};
  std::mutex first_mutex;
  std::string first_failure;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        const std::string msg = "flow-" + std::to_string(t) + "-" + std::to_string(k) + "\n";
        std::string why;
        Socket c = connectLoopback(tcp_port_);
        std::string got;
        if (!c.valid()) {
          why = std::string("connect: ") + std::strerror(errno);
        } else if (!sendAll(c.fd(), msg, 10s)) {
          why = std::string("send: ") + std::strerror(errno);
        } else if (!recvExact(c.fd(), got, msg.size(), 10s) || got != msg) {
          why = "echo: got \"" + got + "\" for \"" + msg + "\"";
        }
        if (!why.empty()) {
          if (failures.fetch_add(1) == 0) {
            std::lock_guard lock(first_mutex);
            first_failure = why;
          }
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  std::cout << "[ info ] " << GetParam() << ": " << kThreads * kPerThread << " flows in "
            << since(start).count() << " ms\n";
  EXPECT_EQ(failures.load(), 0) << "first: " << first_failure;
  EXPECT_TRUE(echo.waitIdle(10s)) << echo.active() << " backend connections still open";
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 0, 10s), 0);
  EXPECT_EQ(metric(agent_->adminPort(), "sluice_splice_active_flows"), 0);
  EXPECT_GE(flowsTotal(), kThreads * kPerThread);
  EXPECT_EQ(stateCounter("held"), 0);
  EXPECT_EQ(httpGet(agent_->adminPort(), "/debug/flows"), "[]");
  // sockmap and auto load the datapath (auto only to report it): ingressctl, which lists the
  // maps' flows and the agent's own, shows nothing, and the pinned maps are empty.
  if (sockmap() || GetParam() == "auto") {
    std::string diag;
    std::optional<json::array> rows;
    const auto deadline = Clock::now() + 10s;
    do {
      rows = ctlFlows(pin_dir_, agent_->adminPort(), &diag);
      if (rows && rows->empty()) {
        break;
      }
      std::this_thread::sleep_for(100ms);
    } while (Clock::now() < deadline);
    ASSERT_TRUE(rows) << diag;
    EXPECT_EQ(rows->size(), 0u) << "ingressctl still lists flows: "
                                << json::serialize(*rows).substr(0, 2000);
    std::string notes;
    for (const auto& [map, entries] : perSocketMapEntries(pin_dir_, &notes)) {
      EXPECT_EQ(entries, 0) << "pinned map " << map << " still has entries";
    }
    if (!notes.empty()) {
      std::cout << "[ info ] " << notes << "\n";
    }
  }
  expectAgentAlive();
}

}  // namespace
}  // namespace sluice::test
