// Process lifecycle: admin endpoints, graceful drain on SIGTERM, and clear errors for bad flags.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace sluice::test {
namespace {

TEST(Admin, HealthReadinessMetricsAndState) {
  EchoBackend a("svc");
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", a.port()}}) + "---\n" +
                          ingressYaml("a", {{"a.example", {{"/api", "Prefix", "svc", "80"}}}}));
  Agent agent(dir.path());
  EXPECT_EQ(httpGet(agent.adminPort(), "/healthz"), "ok\n");
  EXPECT_EQ(httpGet(agent.adminPort(), "/readyz"), "ready\n");
  auto state = boost::json::parse(httpGet(agent.adminPort(), "/debug/state")).as_object();
  EXPECT_EQ(state.at("generation").to_number<int>(), 1);
  auto hosts = state.at("hosts").as_array();
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0].as_object().at("host").as_string(), "a.example");
  auto clusters = state.at("clusters").as_array();
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].as_object().at("name").as_string(), "default/svc:80");
  EXPECT_EQ(
      clusters[0].as_object().at("endpoints").as_array()[0].as_object().at("port").to_number<int>(),
      a.port());
}

TEST(Timeouts, IdleKeepAliveConnectionsAreClosed) {
  EchoBackend a("svc");
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", a.port()}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{"--idle-timeout", "300ms"}, 1});
  Connection c(agent.port());
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(c.read());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.waitClosed(3s));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 1500ms);
}

TEST(AccessLog, OneJsonLinePerRequest) {
  EchoBackend a("svc");
  TempDir dir;
  TempDir logs;
  const std::string log_file = (logs.path() / "access.log").string();
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", a.port()}}) + "---\n" +
                          ingressYaml("a", {{"log.example", {{"/in", "Prefix", "svc", "80"}}}}));
  {
    Agent agent(dir.path(), {{"--access-log", log_file}, 1});
    EXPECT_EQ(request(agent.port(), "GET", "log.example", "/in/x")->status, 200);
    EXPECT_EQ(request(agent.port(), "GET", "log.example", "/out\"quoted")->status, 404);
    agent.process().signal(SIGTERM);
    agent.process().wait(5s);
  }
  std::ifstream in(log_file);
  std::vector<boost::json::object> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(boost::json::parse(line).as_object());
  }
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("status").to_number<int>(), 200);
  EXPECT_EQ(lines[0].at("path").as_string(), "/in/x");
  EXPECT_EQ(lines[0].at("host").as_string(), "log.example");
  EXPECT_NE(lines[0].at("upstream").as_string(), "");
  EXPECT_EQ(lines[1].at("status").to_number<int>(), 404);
  EXPECT_EQ(lines[1].at("path").as_string(), "/out\"quoted");
}

TEST(Drain, SigtermFinishesInFlightRequestsThenExits) {
  EchoBackend a("svc");
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", a.port()}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{"--drain-timeout", "10s"}, 2});
  Connection idle(agent.port());
  ASSERT_TRUE(idle.send("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(idle.read());
  Connection busy(agent.port());
  ASSERT_TRUE(busy.send("GET /delay/1000 HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::this_thread::sleep_for(200ms);

  const auto start = std::chrono::steady_clock::now();
  agent.process().signal(SIGTERM);
  // The idle keep-alive connection is closed promptly.
  EXPECT_TRUE(idle.waitClosed(2s));
  // The in-flight request completes, told to close.
  auto r = busy.read(false, 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->closed);
  auto status = agent.process().wait(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  // No new connections after the drain.
  Connection late(agent.port());
  EXPECT_LT(late.fd(), 0);
}

TEST(Drain, DeadlineCutsWhatDoesNotFinish) {
  EchoBackend a("svc");
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", a.port()}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{"--drain-timeout", "500ms"}, 1});
  Connection busy(agent.port());
  ASSERT_TRUE(busy.send("GET /delay/5000 HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::this_thread::sleep_for(200ms);
  const auto start = std::chrono::steady_clock::now();
  agent.process().signal(SIGTERM);
  auto status = agent.process().wait(5s);
  ASSERT_TRUE(status);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

// The DaemonSet's preStop: `ingress-agent --wait-shutdown` SIGTERMs the agent and returns only
// after it drained and exited; with --shutdown-delay the agent first fails /readyz while it still
// accepts, so load balancers move away before any connection is refused.
TEST(Drain, PreStopHookWaitsThroughTheShutdownDelayAndTheDrain) {
  EchoBackend a("svc");
  TempDir dir;
  TempDir out;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", a.port()}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{"--shutdown-delay", "1500ms"}, 1});
  const auto start = std::chrono::steady_clock::now();
  Process hook({SLUICE_AGENT_BIN, "--wait-shutdown", "--wait-shutdown-pid",
                std::to_string(agent.process().pid()), "--shutdown-delay", "1500ms",
                "--drain-timeout", "5s"},
               out.path() / "hook.txt");
  bool unready = false;
  for (int i = 0; i < 50 && !unready; ++i) {
    unready = httpGet(agent.adminPort(), "/readyz") == "shutting down\n";
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(unready) << "/readyz did not fail at SIGTERM";
  // Still serving new connections during the delay.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(served(request(agent.port(), "GET", "x", "/")), "svc");
  EXPECT_TRUE(hook.running()) << "the hook returned before the agent exited";
  auto hook_status = hook.wait(10s);
  ASSERT_TRUE(hook_status);
  EXPECT_EQ(*hook_status, 0) << hook.output();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1400ms);
  auto agent_status = agent.process().wait(1s);
  ASSERT_TRUE(agent_status) << "the hook returned while the agent still runs";
  EXPECT_EQ(*agent_status, 0);
}

TEST(Flags, BadArgumentsExitWithAClearError) {
  TempDir dir;
  TempDir out;
  const std::vector<std::vector<std::string>> bad = {
      {"--manifests", "/nonexistent/dir"},
      {"--manifests", dir.path().string(), "--listen-http", "nonsense"},
      {"--manifests", dir.path().string(), "--listen-http", "127.0.0.1:99999"},
      {"--manifests", dir.path().string(), "--workers", "0"},
      {"--manifests", dir.path().string(), "--log-level", "chatty"},
      {"--manifests", dir.path().string(), "--header-timeout", "soon"},
      {"--manifests", dir.path().string(), "--no-such-flag"},
      {"--manifests", dir.path().string(), "--splice", "turbo"},
      {"--manifests", dir.path().string(), "--splice-flow-budget", "10"},
      {"--manifests", dir.path().string(), "--tcp-services", "no-namespace"},
      {"--manifests", dir.path().string(), "--tcp-services", "a/b/c"},
      {"--manifests", dir.path().string(), "--publish-address", "Not An Address"},
      {"--manifests", dir.path().string(), "--publish-address", "192.0.2.1,,x"},
      {"--manifests", dir.path().string(), "--update-status", "maybe"},
      {"--manifests", dir.path().string(), "--lease-duration", "5s"},  // not > renew deadline
      {"--manifests", dir.path().string(), "--lease-retry-period", "0s"},
      {"--manifests", dir.path().string(), "--shutdown-delay", "soon"},
      {"--wait-shutdown", "--wait-shutdown-pid", "0"},
      {"--manifests", dir.path().string(), "--kubeconfig", "/nonexistent/kubeconfig"},
      {"--kubeconfig", "/nonexistent/kubeconfig"},
  };
  for (const auto& args : bad) {
    std::vector<std::string> argv{SLUICE_AGENT_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv, out.path() / "out.txt");
    auto status = p.wait(5s);
    ASSERT_TRUE(status) << args.back();
    EXPECT_EQ(*status, 2) << args.back();
    EXPECT_FALSE(p.output().empty()) << args.back();
  }
}

TEST(Flags, PortInUseIsAClearStartupError) {
  TempDir dir;
  TempDir out;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::listen(fd, 1);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  Process p(
      std::vector<std::string>{SLUICE_AGENT_BIN, "--manifests", dir.path().string(),
                               "--listen-http", "127.0.0.1:" + std::to_string(ntohs(addr.sin_port)),
                               "--admin", "127.0.0.1:" + std::to_string(freePort())},
      out.path() / "out.txt");
  auto status = p.wait(5s);
  ::close(fd);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 1);
  EXPECT_NE(p.output().find("Address already in use"), std::string::npos) << p.output();
}

}  // namespace
}  // namespace sluice::test
