// `ingressctl backends` and the XDP rows of `ingressctl flows`: the L4 fast path's maps pinned
// under a private bpffs directory by the agent's own loader, filled the way the agent fills them
// (a Maglev table over three backends, one draining, and flow entries), then the ingressctl
// binary run against them, table and JSON.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <stdio.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdio>
#include <sstream>
#include <string>

#include "bpf/l4_fastpath.hpp"
#include "bpf/l4_maps.hpp"
#include "l4.hpp"
#include "lb/maglev.hpp"
#include "support/bpf_env.hpp"

namespace sluice::cli {
namespace {

std::uint32_t ip(const char* s) {
  std::uint32_t a = 0;
  ::inet_pton(AF_INET, s, &a);
  return a;
}

// Runs ingressctl with `args`; returns stdout and sets *code to the exit status.
std::string ingressctl(const std::string& args, int* code) {
  const std::string cmd = std::string(INGRESSCTL_PATH) + " " + args + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while (p != nullptr && (n = std::fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  const int status = p != nullptr ? ::pclose(p) : -1;
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

class BackendsTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string why;
    if (!test::bpffsUsable(&why)) {
      GTEST_SKIP() << why;
    }
    dir_ = test::uniquePinDir();
    auto l4 = bpf::L4FastPath::open({.pin_root = dir_, .unchain_on_exit = true});
    ASSERT_TRUE(l4.ok()) << l4.error().message();
    l4_ = std::move(*l4);
    const auto m = l4_->maps();
    const char* addrs[] = {"10.1.0.1", "10.1.0.2", "10.1.0.3"};
    std::vector<lb::MaglevBackend> mb;
    for (std::uint32_t id = 0; id < 3; ++id) {
      sluice_l4_backend b{};
      b.addr = ip(addrs[id]);
      b.port = htons(5432);
      b.state = id == 2 ? SLUICE_L4_BACKEND_DRAINING : SLUICE_L4_BACKEND_ACTIVE;
      b.service_id = 7;
      ASSERT_TRUE(bpf::writeL4Backend(m.backends, id, b).ok());
      if (id < 2) {
        mb.push_back({std::string(addrs[id]) + ":5432", id});
      }
    }
    auto table = lb::buildMaglevTable(mb, 251);
    ASSERT_TRUE(table.ok());
    ASSERT_TRUE(bpf::swapMaglevTable(m.ring, 7, *table).ok());
    bpf::L4ServiceEntry svc{};
    svc.key.port = htons(15432);
    svc.key.proto = IPPROTO_TCP;
    svc.value = {7, SLUICE_L4_SVC_F_FAST, 251, 2};
    ASSERT_TRUE(bpf::reconcileL4Services(m.services, {svc}).ok());
    // Two flows on backend 0, one on the draining backend 2.
    for (std::uint16_t i = 0; i < 3; ++i) {
      sluice_l4_flow_key k{ip("192.0.2.9"), ip("192.0.2.1"), htons(40000 + i), htons(15432), 6, {}};
      sluice_l4_flow f{};
      f.backend_id = i == 2 ? 2 : 0;
      f.backend_addr = ip(addrs[f.backend_id]);
      f.backend_port = htons(5432);
      f.bytes_in = 100 + i;
      f.packets_in = 3;
      ASSERT_EQ(::bpf_map_update_elem(m.flows, &k, &f, BPF_ANY), 0);
    }
  }
  void TearDown() override {
    l4_.reset();
    if (!dir_.empty()) {
      test::removePinDir(dir_);
    }
  }
  std::string dir_;
  std::unique_ptr<bpf::L4FastPath> l4_;
};

TEST_F(BackendsTest, JsonListsBackendsWithFillStateAndFlows) {
  int code = -1;
  const std::string out = ingressctl("--pin-dir " + dir_ + " -o json backends", &code);
  ASSERT_EQ(code, 0) << out;
  const auto doc = boost::json::parse(out).as_object();
  const auto& rows = doc.at("backends").as_array();
  ASSERT_EQ(rows.size(), 3u);
  std::uint64_t slots = 0;
  for (const auto& r : rows) {
    const auto& o = r.as_object();
    EXPECT_EQ(o.at("port").as_int64(), 15432);
    EXPECT_EQ(o.at("service_id").as_int64(), 7);
    const std::string backend(o.at("backend").as_string());
    slots += static_cast<std::uint64_t>(o.at("slots").as_int64());
    if (backend == "10.1.0.1:5432") {
      EXPECT_EQ(o.at("state").as_string(), "active");
      EXPECT_EQ(o.at("flows").as_int64(), 2);
      EXPECT_NEAR(o.at("fill").as_double(), 0.5, 0.03);
    } else if (backend == "10.1.0.3:5432") {
      EXPECT_EQ(o.at("state").as_string(), "draining");
      EXPECT_EQ(o.at("slots").as_int64(), 0);
      EXPECT_EQ(o.at("flows").as_int64(), 1);
    } else {
      EXPECT_EQ(backend, "10.1.0.2:5432");
      EXPECT_EQ(o.at("flows").as_int64(), 0);
    }
  }
  EXPECT_EQ(slots, 251u) << "every slot names a backend";
  EXPECT_TRUE(doc.at("packets").as_object().contains("no_fib"));
}

TEST_F(BackendsTest, TableHasTheSameFieldsAsColumns) {
  int code = -1;
  const std::string out = ingressctl("--pin-dir " + dir_ + " backends", &code);
  ASSERT_EQ(code, 0) << out;
  const std::string header = out.substr(0, out.find('\n'));
  std::size_t at = 0;
  for (const char* h :
       {"PORT", "SERVICE-ID", "BACKEND", "BACKEND-ID", "STATE", "SLOTS", "FILL", "FLOWS"}) {
    at = header.find(h, at);
    EXPECT_NE(at, std::string::npos) << h << " in order in: " << header;
  }
  EXPECT_NE(out.find("50.2%"), std::string::npos) << out;
  EXPECT_NE(out.find("10.1.0.3:5432"), std::string::npos);
  EXPECT_NE(out.find("draining"), std::string::npos);
}

TEST_F(BackendsTest, MissingMapsAreARuntimeErrorInJsonToo) {
  int code = -1;
  const std::string out = ingressctl("--pin-dir /sys/fs/bpf/no-such-dir -o json backends", &code);
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(boost::json::parse(out).as_object().contains("error")) << out;
}

TEST_F(BackendsTest, XdpFlowsJoinTheFlowsModel) {
  FlowsModel model;
  addXdpFlows(dir_, model);
  ASSERT_EQ(model.flows.size(), 3u);
  std::ostringstream out, err;
  renderFlows(model, Output::kJson, out, err);
  const auto rows = boost::json::parse(out.str()).as_array();
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.as_object().at("strategy").as_string(), "xdp");
    EXPECT_EQ(r.as_object().at("pkts_in").as_int64(), 3);
  }
  std::ostringstream table;
  renderFlows(model, Output::kTable, table, err);
  EXPECT_NE(table.str().find("192.0.2.9:40001"), std::string::npos) << table.str();
}

}  // namespace
}  // namespace sluice::cli
