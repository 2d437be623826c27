// The agent's limits against the real binary: the request deadline and the minimum body rate
// (a client trickling bytes inside every inactivity timeout), the connection cap, and the
// per-cluster circuit breakers.
#include <poll.h>

#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string oneServiceManifests(std::uint16_t backend_port, const std::string& annotations = "") {
  return ingressClassYaml() + "---\n" +
         serviceYaml("web", 80, "http", {{"127.0.0.1", backend_port}}, "default", annotations) +
         "---\n" + ingressYaml("web", {{"", {{"/", "Prefix", "web", "http"}}}});
}

bool readable(int fd, std::chrono::milliseconds wait) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(wait.count())) == 1;
}

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// One byte every 200 ms keeps every inactivity timeout happy; the total deadline still ends it.
TEST(Deadlines, ATricklingBodyIsCutAtTheRequestTimeout) {
  EchoBackend web("web");
  TempDir dir;
  dir.write("a.yaml", oneServiceManifests(web.port()));
  Agent agent(dir.path(), {{"--request-timeout", "2s", "--min-body-rate", "0"}, 1});
  Connection c(agent.port());
  const auto start = Clock::now();
  ASSERT_TRUE(c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
  while (Clock::now() - start < 10s && !readable(c.fd(), 200ms)) {
    c.send("a");
  }
  auto r = c.read();
  const double took = seconds(Clock::now() - start);
  ASSERT_TRUE(r) << "no reply after " << took << " s";
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(r->closed);
  EXPECT_GT(took, 1.8);
  EXPECT_LT(took, 4.0);
  EXPECT_EQ(
      metricValue(agent.adminPort(), "sluice_client_timeouts_total{reason=\"request_deadline\"}"),
      1);
}

// --min-body-rate 1000: a body at 100 B/s is cut once a 10 s window ends; one at 3,000 B/s,
// sent alongside for longer than a window, completes.
TEST(Deadlines, ABodyUnderTheMinimumRateIsCutAfterAWindowAndAFasterOneIsNot) {
  EchoBackend web("web");
  TempDir dir;
  dir.write("a.yaml", oneServiceManifests(web.port()));
  Agent agent(dir.path(), {{"--request-timeout", "0s", "--min-body-rate", "1000"}, 1});
  constexpr std::size_t kFastBody = 36'000;  // 12 s at 3,000 B/s
  Connection slow(agent.port());
  Connection fast(agent.port());
  const auto start = Clock::now();
  ASSERT_TRUE(slow.send("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
  ASSERT_TRUE(fast.send("POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                        std::to_string(kFastBody) + "\r\n\r\n"));
  std::size_t fast_sent = 0;
  std::optional<double> slow_cut_at;
  while (Clock::now() - start < 20s && (fast_sent < kFastBody || !slow_cut_at)) {
    std::this_thread::sleep_for(100ms);
    if (fast_sent < kFastBody) {
      ASSERT_TRUE(fast.send(std::string(300, 'f'))) << "fast client cut after " << fast_sent;
      fast_sent += 300;
    }
    if (!slow_cut_at) {
      if (readable(slow.fd(), 0ms)) {
        slow_cut_at = seconds(Clock::now() - start);
      } else {
        slow.send(std::string(10, 's'));
      }
    }
  }
  ASSERT_TRUE(slow_cut_at) << "the slow body was never cut";
  EXPECT_GT(*slow_cut_at, 9.5);
  EXPECT_LT(*slow_cut_at, 14.0);
  auto slow_reply = slow.read();
  ASSERT_TRUE(slow_reply);
  EXPECT_EQ(slow_reply->status, 408);
  auto fast_reply = fast.read();
  ASSERT_TRUE(fast_reply);
  EXPECT_EQ(fast_reply->status, 200);
  EXPECT_EQ(metricValue(agent.adminPort(), "sluice_client_timeouts_total{reason=\"body_rate\"}"),
            1);
}

// More connections than --max-connections, each holding half a head: the agent takes up to the
// cap (the kernel's backlog holds the rest), its memory stays bounded, and a well-behaved client
// queued behind them is served once the header timeout frees slots.
TEST(Overload, HalfHeadsBeyondTheCapCostBoundedMemoryAndAGoodClientIsServedLater) {
  EchoBackend web("web");
  TempDir dir;
  dir.write("a.yaml", oneServiceManifests(web.port()));
  Agent agent(dir.path(), {{"--max-connections", "50", "--header-timeout", "2s"}, 1});
  ASSERT_EQ(request(agent.port(), "GET", "x", "/warm")->status, 200);
  const long rss_before = rssKiB(agent.process().pid());
  std::vector<std::unique_ptr<Connection>> holders;
  for (int i = 0; i < 120; ++i) {
    holders.push_back(std::make_unique<Connection>(agent.port()));
    ASSERT_TRUE(holders.back()->send("GET /held HTTP/1.1\r\nHost: x\r\nX-Half: ")) << i;
  }
  std::this_thread::sleep_for(500ms);
  EXPECT_LE(metricValue(agent.adminPort(), "sluice_active_connections"), 50);
  const long rss_held = rssKiB(agent.process().pid());
  EXPECT_LT(rss_held - rss_before, 8 * 1024) << "KiB grown for 50 half heads";
  // The admin listener is not behind the cap: the agent can still be inspected.
  EXPECT_GE(metricValue(agent.adminPort(), "sluice_connections_total"), 50);
  // Queued behind 120 half heads: served once the header timeout has cleared the ones ahead.
  const auto start = Clock::now();
  auto r = request(agent.port(), "GET", "x", "/good");
  ASSERT_TRUE(r) << "not served after " << seconds(Clock::now() - start) << " s";
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(seconds(Clock::now() - start), 15);
  EXPECT_LT(rssKiB(agent.process().pid()) - rss_before, 8 * 1024);
}

// sluice.dev/max-connections: 1 on the Service: while one request is at the backend, the next
// one is answered 503 at once and counted; once it is done the cluster takes requests again.
TEST(Breakers, OverTheServicesConnectionLimitIs503AtOnce) {
  EchoBackend web("web");
  TempDir dir;
  dir.write("a.yaml", oneServiceManifests(web.port(), "    sluice.dev/max-connections: \"1\"\n"));
  Agent agent(dir.path(), {{}, 2});
  std::thread slow([&] {
    auto r = request(agent.port(), "GET", "x", "/delay/1500");
    EXPECT_TRUE(r && r->status == 200);
  });
  std::this_thread::sleep_for(500ms);
  const auto start = Clock::now();
  auto refused = request(agent.port(), "GET", "x", "/second");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_LT(seconds(Clock::now() - start), 0.5) << "at once, not queued";
  EXPECT_EQ(metricValue(agent.adminPort(),
                        "sluice_upstream_overflow_total{cluster=\"default/web:http\","
                        "limit=\"connections\"}"),
            1);
  slow.join();
  auto after = request(agent.port(), "GET", "x", "/third");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  // The agent gives the connection back right after the response's last write: the client can
  // read the response a moment before that.
  const std::string busy = "sluice_upstream_busy_connections{cluster=\"default/web:http\"}";
  for (int i = 0; i < 40 && metricValue(agent.adminPort(), busy) != 0; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(metricValue(agent.adminPort(), busy), 0) << "a breaker unit leaked";
}

}  // namespace
}  // namespace sluice::test
