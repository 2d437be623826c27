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

}  // namespace
}  // namespace sluice::test
