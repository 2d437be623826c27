// sluice.dev/allow-source-ranges and deny-source-ranges on Ingresses, through the real agent: a
// client outside a host's allow list, or inside its deny list, gets the agent's 403; others reach
// the backend. Clients connect from 127.0.0.1 or 127.0.0.2 (both loopback).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "harness.hpp"

namespace sluice::test {
namespace {

class SourceRanges : public ::testing::Test {
protected:
  void SetUp() override {
    backend_ = std::make_unique<EchoBackend>("web");
    manifests_.write("class.yaml", ingressClassYaml());
    manifests_.write("svc.yaml", serviceYaml("web", 8080, "", {{"127.0.0.1", backend_->port()}}));
    const auto ing = [](const std::string& name, const std::string& host,
                        const std::string& annotations) {
      return ingressYaml(name, {{host, {{"/", "Prefix", "web", "8080"}}}}, "", "", "sluice",
                         "default", "2024-01-01T00:00:00Z", annotations);
    };
    manifests_.write(
        "ingresses.yaml",
        ing("only-one", "only-one.test",
            "    sluice.dev/allow-source-ranges: \"10.0.0.0/8, 127.0.0.1/32, not-a-cidr\"\n") +
            "---\n" +
            ing("elsewhere", "elsewhere.test", "    sluice.dev/allow-source-ranges: 10.0.0.0/8\n") +
            "---\n" +
            ing("deny-two", "deny-two.test", "    sluice.dev/deny-source-ranges: 127.0.0.2\n") +
            "---\n" + ing("open", "open.test", ""));
    agent_ = std::make_unique<Agent>(manifests_.path());
  }

  int status(const std::string& host, const std::string& source) {
    Connection c(agent_->port(), "127.0.0.1", source);
    if (!c.send("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n")) {
      return -1;
    }
    const auto r = c.read();
    return r ? r->status : -1;
  }

  TempDir manifests_;
  std::unique_ptr<EchoBackend> backend_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(SourceRanges, AllowAndDenyListsAnswer403OrReachTheBackend) {
  EXPECT_EQ(status("only-one.test", "127.0.0.1"), 200) << "inside the allow list";
  EXPECT_EQ(status("only-one.test", "127.0.0.2"), 403) << "outside the allow list";
  EXPECT_EQ(status("elsewhere.test", "127.0.0.1"), 403) << "allow list without loopback";
  EXPECT_EQ(status("deny-two.test", "127.0.0.1"), 200);
  EXPECT_EQ(status("deny-two.test", "127.0.0.2"), 403) << "on the deny list";
  EXPECT_EQ(status("open.test", "127.0.0.2"), 200) << "no annotations: everyone";
  EXPECT_GE(metricValue(agent_->adminPort(), "sluice_local_replies_total{code=\"403\"}"), 3);
  EXPECT_NE(agent_->output().find("not-a-cidr"), std::string::npos)
      << "the bad entry is warned about, naming it:\n"
      << agent_->output();
  EXPECT_NE(agent_->output().find("default/only-one"), std::string::npos)
      << "the warning names the Ingress";
}

TEST_F(SourceRanges, AKeptAliveConnectionIsJudgedPerRequestsHost) {
  Connection c(agent_->port(), "127.0.0.1", "127.0.0.2");
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: open.test\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: only-one.test\r\n\r\n"));
  r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->body, "source address not allowed\n");
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// TCP routes' ranges are enforced in XDP only; without --xdp-interfaces the agent says so.
TEST(SourceRangesTcp, WithoutTheFrontDoorTheAgentWarnsTheyAreNotEnforced) {
  TempDir manifests;
  manifests.write("svc.yaml", serviceYaml("db", 5432, "", {{"127.0.0.1", 1}}, "default",
                                          "    sluice.dev/allow-source-ranges: 10.0.0.0/8\n"));
  manifests.write("tcp.yaml",
                  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sluice-tcp-services\n"
                  "  namespace: sluice-system\ndata:\n  \"15432\": default/db:5432\n");
  Agent agent(manifests.path());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (agent.output().find("15432: sluice.dev/*-source-ranges are enforced by the XDP") ==
             std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(agent.output().find("TCP route port(s) 15432: sluice.dev/*-source-ranges are "
                                "enforced by the XDP front door, which is off"),
            std::string::npos)
      << agent.output();
}

}  // namespace
}  // namespace sluice::test
