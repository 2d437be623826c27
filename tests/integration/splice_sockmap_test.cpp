// sockmap only (ingressctl flows, restarts), auto's resolution, and the fallback without BPF.
#include <sys/stat.h>

#include "splice_fixture.hpp"

namespace sluice::test {
namespace {

// ---- sockmap only: ingressctl and restarts ---------------------------------------------------

class SpliceSockmap : public ::testing::Test {
protected:
  void SetUp() override {
    std::string why;
    if (!bpffsUsable(&why)) {
      GTEST_SKIP() << why;
    }
    pin_dir_ = uniquePinDir();
  }
  void TearDown() override {
    if (HasFailure() && agent_) {
      std::cerr << "---- agent output ----\n" << agent_->output() << "----\n";
    }
    agent_.reset();
    removePinDir(pin_dir_);
  }
  void start(std::uint16_t backend_port, std::vector<std::string> extra = {}) {
    if (tcp_port_ == 0) {
      tcp_port_ = freePort();
      manifests_.write(
          "tcp.yaml",
          ingressClassYaml() + "---\n" +
              serviceYaml("sink", kServicePort, "", {{"127.0.0.1", backend_port}}) + "---\n" +
              tcpServicesYaml({{tcp_port_, "default/sink:" + std::to_string(kServicePort)}}));
    }
    std::vector<std::string> args{"--splice=sockmap", "--bpf-pin-dir", pin_dir_};
    args.insert(args.end(), extra.begin(), extra.end());
    agent_ = std::make_unique<Agent>(manifests_.path(), AgentOptions{args, 2});
    ASSERT_TRUE(waitListening(tcp_port_, 5s));
  }

  TempDir manifests_;
  std::unique_ptr<Agent> agent_;
  std::string pin_dir_;
  std::uint16_t tcp_port_ = 0;
};

TEST_F(SpliceSockmap, IngressctlFlowsShowsALiveFlowWithGrowingCounters) {
  RawBackend echo(echoHandler);
  ASSERT_NO_FATAL_FAILURE(start(echo.port()));
  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  auto exchange = [&](std::uint64_t seed) {
    const std::string data = ByteStream(seed).take(kMiB);
    std::future<bool> sent =
        std::async(std::launch::async, [&] { return sendAll(c.fd(), data, 10s); });
    std::string got;
    EXPECT_TRUE(recvExact(c.fd(), got, data.size(), 10s));
    EXPECT_TRUE(sent.get());
    EXPECT_TRUE(got == data) << "echo differs";
  };
  auto ourRow = [&](std::string* diag) -> std::optional<json::object> {
    const auto deadline = Clock::now() + 5s;
    for (;;) {
      auto rows = ctlFlows(pin_dir_, agent_->adminPort(), diag);
      if (rows && rows->size() == 1) {
        return rows->at(0).as_object();
      }
      if (rows) {
        *diag += "\nrows: " + json::serialize(*rows);
      }
      if (Clock::now() >= deadline) {
        return std::nullopt;
      }
      std::this_thread::sleep_for(100ms);
    }
  };
  exchange(1);
  std::string diag;
  auto first = ourRow(&diag);
  ASSERT_TRUE(first) << diag;
  exchange(2);
  auto second = ourRow(&diag);
  ASSERT_TRUE(second) << diag;
  std::cout << "[ info ] flows: " << json::serialize(*first) << " then " << json::serialize(*second)
            << "\n";
  EXPECT_EQ(first->at("flow_id"), second->at("flow_id"));
  EXPECT_EQ(second->at("client").as_string(), localAddress(c.fd()));
  EXPECT_EQ(second->at("backend").as_string(), "127.0.0.1:" + std::to_string(echo.port()));
  EXPECT_EQ(second->at("strategy").as_string(), "sockmap");
  const auto in1 = first->at("bytes_in").to_number<std::uint64_t>();
  const auto in2 = second->at("bytes_in").to_number<std::uint64_t>();
  const auto out1 = first->at("bytes_out").to_number<std::uint64_t>();
  const auto out2 = second->at("bytes_out").to_number<std::uint64_t>();
  EXPECT_GT(in1, 0u);
  EXPECT_GT(out1, 0u);
  EXPECT_GT(in2, in1);
  EXPECT_GT(out2, out1);
  // Every byte of the second exchange went through the kernel redirect.
  EXPECT_EQ(in2 - in1, kMiB);
  EXPECT_EQ(out2 - out1, kMiB);
}

TEST_F(SpliceSockmap, RestartAfterSigkillLeavesNoStaleFlows) {
  constexpr int kFlows = 20;
  RawBackend echo(echoHandler);
  ASSERT_NO_FATAL_FAILURE(start(echo.port()));
  std::vector<Socket> conns;
  for (int i = 0; i < kFlows; ++i) {
    Socket c = connectLoopback(tcp_port_);
    ASSERT_TRUE(c.valid());
    const std::string msg = "before-kill-" + std::to_string(i);
    ASSERT_TRUE(sendAll(c.fd(), msg));
    std::string got;
    ASSERT_TRUE(recvExact(c.fd(), got, msg.size(), 5s));
    conns.push_back(std::move(c));
  }
  std::string diag;
  std::optional<json::array> rows;
  for (int i = 0; i < 50; ++i) {
    rows = ctlFlows(pin_dir_, agent_->adminPort(), &diag);
    if (rows && rows->size() == kFlows) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(rows) << diag;
  EXPECT_EQ(rows->size(), static_cast<std::size_t>(kFlows));

  agent_->process().signal(SIGKILL);
  ASSERT_TRUE(agent_->process().wait(5s));
  for (auto& c : conns) {
    EXPECT_NE(waitPeerClosed(c.fd(), 5s), ReadEnd::kTimeout);
  }
  conns.clear();
  auto stale = ctlFlows(pin_dir_, agent_->adminPort(), &diag);
  std::cout << "[ info ] after SIGKILL ingressctl lists "
            << (stale ? std::to_string(stale->size()) : "?") << " flows\n";
  agent_.reset();

  ASSERT_NO_FATAL_FAILURE(start(echo.port()));
  const auto deadline = Clock::now() + 5s;
  do {
    rows = ctlFlows(pin_dir_, agent_->adminPort(), &diag);
    if (rows && rows->empty()) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  } while (Clock::now() < deadline);
  ASSERT_TRUE(rows) << diag;
  EXPECT_EQ(rows->size(), 0u) << "stale flows after restart: " << json::serialize(*rows);
  std::string notes;
  for (const auto& [map, entries] : perSocketMapEntries(pin_dir_, &notes)) {
    EXPECT_EQ(entries, 0) << "pinned map " << map << " still has entries after restart";
  }

  // The restarted agent splices again through the same pinned maps.
  Socket c = connectLoopback(tcp_port_);
  ASSERT_TRUE(c.valid());
  ASSERT_TRUE(sendAll(c.fd(), "after-restart"));
  std::string got;
  ASSERT_TRUE(recvExact(c.fd(), got, 13, 5s));
  EXPECT_EQ(got, "after-restart");
  auto state = spliceState(agent_->adminPort());
  ASSERT_TRUE(state);
  EXPECT_EQ(stateString(*state, "strategy"), "sockmap");
  EXPECT_EQ(waitActiveFlows(agent_->adminPort(), 1, 3s), 1);
}

// auto never uses sockmap (measured slower on 6.18, and its bounded mode cannot be relayed): it
// resolves to the adaptive copy/pipe relay, bodies by splice(2), and says what it found of
// sockmap either way.
TEST(SpliceAuto, ResolvesToAdaptiveAndReportsSockmap) {
  std::string why;
  const bool bpf = bpffsUsable(&why);
  const std::string pin_dir = uniquePinDir();
  TempDir manifests;
  manifests.write("a.yaml", ingressClassYaml());
  {
    Agent agent(manifests.path(), {{"--bpf-pin-dir", pin_dir}, 1});
    auto state = spliceState(agent.adminPort());
    ASSERT_TRUE(state) << httpGet(agent.adminPort(), "/debug/state");
    const std::string text = json::serialize(*state);
    EXPECT_EQ(stateString(*state, "requested"), "auto") << text;
    EXPECT_EQ(stateString(*state, "strategy"), "adaptive") << text;
    EXPECT_EQ(stateString(*state, "body_strategy"), "pipe") << text;
    const std::string reason = stateString(*state, "reason");
    if (bpf) {
      EXPECT_NE(reason.find("sockmap is available"), std::string::npos) << text;
    } else {
      std::cout << "[ info ] sockmap cannot load here (" << why << ")\n";
      EXPECT_NE(reason.find("sockmap is unavailable"), std::string::npos) << text;
    }
    EXPECT_GE(metric(agent.adminPort(), "sluice_splice_flows_total{strategy=\"adaptive\"}"), 0)
        << "no sluice_splice_flows_total{strategy=\"adaptive\"}";
    EXPECT_GE(metric(agent.adminPort(), "sluice_splice_upgraded_total"), 0)
        << "no sluice_splice_upgraded_total";
  }
  removePinDir(pin_dir);
}

// Loading the splice object parses the kernel's BTF (about 14 MiB, freed at once): the agent
// does it in a child process and adopts the pins, so its own peak RSS (VmHWM, which lasts for
// the process's life) stays at its steady state. In-process it was 24 MiB on this machine.
TEST(SpliceAuto, TheDatapathIsLoadedInAChildAndAdopted) {
  std::string why;
  if (!bpffsUsable(&why)) {
    GTEST_SKIP() << why;
  }
  const std::string pin_dir = uniquePinDir();
  TempDir manifests;
  manifests.write("a.yaml", ingressClassYaml());
  {
    Agent agent(manifests.path(), {{"--bpf-pin-dir", pin_dir}, 1});
    auto state = spliceState(agent.adminPort());
    ASSERT_TRUE(state);
    EXPECT_NE(stateString(*state, "reason").find("sockmap is available"), std::string::npos)
        << json::serialize(*state);
    std::ifstream status("/proc/" + std::to_string(agent.process().pid()) + "/status");
    std::string line;
    long hwm_kib = -1;
    while (std::getline(status, line)) {
      if (line.rfind("VmHWM:", 0) == 0) {
        hwm_kib = std::stol(line.substr(6));
      }
    }
    ASSERT_GT(hwm_kib, 0);
    EXPECT_LT(hwm_kib, 16 * 1024) << "the agent's peak RSS: was the BTF parsed in-process?";
    struct stat st {};
    EXPECT_EQ(::stat((pin_dir + "/sluice_splice_verdict").c_str(), &st), 0)
        << "the adopted verdict is pinned";
  }
  removePinDir(pin_dir);
}

// BPF is an accelerator: when the datapath cannot load (here: a pin directory that is not on
// bpffs), --splice=sockmap says so once, falls back to splice(2) and keeps serving.
TEST(SpliceFallback, SockmapWithoutBpfServesWithPipeAndSaysSoOnce) {
  EchoBackend backend("web");
  TempDir manifests;
  TempDir not_bpffs;
  manifests.write("a.yaml", ingressClassYaml() + "---\n" +
                                serviceYaml("web", 80, "http", {{"127.0.0.1", backend.port()}}) +
                                "---\n" +
                                ingressYaml("web", {{"", {{"/", "Prefix", "web", "http"}}}}));
  Agent agent(manifests.path(),
              {{"--splice=sockmap", "--bpf-pin-dir", (not_bpffs.path() / "sluice").string()}, 1});
  auto state = spliceState(agent.adminPort());
  ASSERT_TRUE(state) << httpGet(agent.adminPort(), "/debug/state");
  const std::string text = json::serialize(*state);
  EXPECT_EQ(stateString(*state, "requested"), "sockmap") << text;
  EXPECT_EQ(stateString(*state, "strategy"), "pipe") << text;
  EXPECT_NE(stateString(*state, "bpf_error").find("bpffs"), std::string::npos) << text;
  EXPECT_EQ(served(request(agent.port(), "GET", "x", "/")), "web");

  const std::string log = agent.output();
  std::size_t warnings = 0;
  for (std::size_t at = log.find("--splice=sockmap: BPF unavailable"); at != std::string::npos;
       at = log.find("--splice=sockmap: BPF unavailable", at + 1)) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1U) << log;
}

}  // namespace
}  // namespace sluice::test
