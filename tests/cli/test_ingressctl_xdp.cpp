// ingressctl xdp and deny list|add|del against the XDP front door's maps, pinned under a private
// bpffs directory by the agent's own loader (nothing attached): tables, JSON and errors.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bpf/frontdoor.hpp"
#include "bpf/xdp_maps.hpp"
#include "ctl_run.hpp"
#include "support/bpf_env.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;

// The front door's maps pinned under a private directory (the object loaded, nothing attached),
// as a running agent with --xdp-interfaces leaves them.
class IngressctlXdpTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (std::string why; !test::bpffsUsable(&why)) {
      GTEST_SKIP() << why;
    }
    pin_root_ = test::uniquePinDir();
    auto door = bpf::Frontdoor::open({.pin_root = pin_root_});
    ASSERT_TRUE(door.ok()) << door.error().message();
    door_ = std::move(*door);
  }
  void TearDown() override {
    door_.reset();
    if (!pin_root_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(pin_root_, ec);
      EXPECT_FALSE(ec) << ec.message();
    }
  }
  CtlRun ctl(std::vector<std::string> args) {
    std::vector<std::string> all{"--pin-dir", pin_root_};
    all.insert(all.end(), args.begin(), args.end());
    return runCtl(all);
  }

  std::string pin_root_;
  std::unique_ptr<bpf::Frontdoor> door_;
};

TEST_F(IngressctlXdpTest, DenyAddListDelAsTableAndJson) {
  CtlRun run = ctl({"deny", "add", "203.0.113.0/24"});
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(rowStartingWith(run.out, "CIDR"), (std::vector<std::string>{"CIDR", "ORIGIN"}));
  EXPECT_EQ(rowStartingWith(run.out, "203.0.113.0/24"),
            (std::vector<std::string>{"203.0.113.0/24", "ingressctl"}));
  ASSERT_EQ(ctl({"deny", "add", "2001:db8::1"}).exit_code, 0);
  ASSERT_TRUE(bpf::addDeny(door_->denyMaps(), *net::parseCidr("198.51.100.0/24"),
                           SLUICE_XDP_ORIGIN_CONFIGMAP)
                  .ok());

  run = ctl({"deny", "list", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_array()) << run;
  std::vector<std::string> rows;
  for (const auto& e : v.as_array()) {
    rows.push_back(std::string(e.at("cidr").as_string()) + " " +
                   std::string(e.at("origin").as_string()));
  }
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(rows,
            (std::vector<std::string>{"198.51.100.0/24 configmap", "2001:db8::1/128 ingressctl",
                                      "203.0.113.0/24 ingressctl"}));
  EXPECT_EQ(ctl({"deny"}).out, ctl({"deny", "list"}).out) << "list is the default";

  run = ctl({"deny", "del", "203.0.113.0/24"});
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_TRUE(rowStartingWith(run.out, "203.0.113.0/24").empty()) << run;
  run = ctl({"deny", "del", "203.0.113.0/24"});
  EXPECT_NE(run.exit_code, 0) << "deleting an absent range is an error\n" << run;
  EXPECT_NE(run.err.find("203.0.113.0/24"), std::string::npos) << run;
}

TEST_F(IngressctlXdpTest, ABadCidrIsAClearErrorAndChangesNothing) {
  for (const char* bad : {"10.0.0.1/8", "10.0.0.300", "example.com", "10.0.0.0/33"}) {
    CtlRun run = ctl({"deny", "add", bad});
    EXPECT_EQ(run.exit_code, 1) << run;
    EXPECT_EQ(run.out, "");
    EXPECT_TRUE(run.err.starts_with(std::string("ingressctl: bad CIDR \"") + bad + "\"")) << run;
    run = ctl({"-o", "json", "deny", "del", bad});
    EXPECT_EQ(run.exit_code, 1) << run;
    EXPECT_EQ(run.err, "");
    const json::value v = parseJson(run.out);
    ASSERT_TRUE(v.is_object()) << run;
    EXPECT_TRUE(std::string(v.at("error").as_string()).starts_with("bad CIDR")) << run;
  }
  EXPECT_NE(ctl({"deny", "add", "10.0.0.1/8"}).err.find("write 10.0.0.0/8"), std::string::npos);
  const CtlRun list = ctl({"deny", "list", "-o", "json"});
  EXPECT_EQ(parseJson(list.out), json::value(json::array())) << list;
  // The CIDR is judged before the maps are looked for: no agent needed to learn it is wrong.
  const CtlRun nowhere =
      runCtl({"--pin-dir", "/sys/fs/bpf/sluice-ctl-none", "deny", "add", "10.0.0.1/8"});
  EXPECT_EQ(nowhere.exit_code, 1) << nowhere;
  EXPECT_TRUE(nowhere.err.starts_with("ingressctl: bad CIDR")) << nowhere;
}

TEST_F(IngressctlXdpTest, DenyWithoutTheFrontDoorSaysWhatIsMissing) {
  const CtlRun run = runCtl({"--pin-dir", "/sys/fs/bpf/sluice-ctl-none", "deny", "list"});
  EXPECT_EQ(run.exit_code, 1) << run;
  EXPECT_NE(run.err.find("is the agent running with --xdp-interfaces?"), std::string::npos) << run;
  const CtlRun xdp = runCtl({"--pin-dir", "/sys/fs/bpf/sluice-ctl-none", "-o", "json", "xdp"});
  EXPECT_EQ(xdp.exit_code, 1) << xdp;
  EXPECT_TRUE(parseJson(xdp.out).as_object().contains("error")) << xdp;
}

TEST_F(IngressctlXdpTest, XdpShowsLimitsScopeCountersAndSourcesAsJsonAndTable) {
  sluice_xdp_config c{};
  c.syn_interval_ns = 200'000'000;  // 5/s
  c.syn_burst = 7;
  c.flags = SLUICE_XDP_CFG_F_SYNCOOKIE;
  ASSERT_TRUE(bpf::writeXdpConfig(door_->configFd(), c).ok());
  std::array<std::uint8_t, 16> addr{};
  ::inet_pton(AF_INET, "192.0.2.10", addr.data());
  ASSERT_TRUE(bpf::reconcileScope(door_->scopeFd(),
                                  {{bpf::scopeKey(false, &addr, 8080), {SLUICE_XDP_KIND_HTTP, 0}},
                                   {bpf::scopeKey(true, nullptr, 5432),
                                    {SLUICE_XDP_KIND_TCP, SLUICE_XDP_SCOPE_F_ALLOWLIST}}})
                  .ok());
  ASSERT_TRUE(
      bpf::addDeny(door_->denyMaps(), *net::parseCidr("10.9.0.0/16"), SLUICE_XDP_ORIGIN_CLI).ok());
  sluice_xdp_src src{};
  ::inet_pton(AF_INET, "10.77.0.4", src.addr);
  src.family = SLUICE_XDP_FAMILY_V4;
  sluice_xdp_bucket b{};
  b.syns = 100;
  b.syn_drops = 93;
  ASSERT_EQ(::bpf_map_update_elem(door_->rateFd(), &src, &b, BPF_ANY), 0);

  CtlRun run = ctl({"xdp", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_object()) << run;
  EXPECT_EQ(v.at("syn_rate_per_source").to_number<double>(), 5.0);
  EXPECT_EQ(v.at("syn_burst").to_number<int>(), 7);
  EXPECT_EQ(v.at("packet_rate_per_source").to_number<double>(), 0.0);
  EXPECT_TRUE(v.at("syn_cookies").as_bool());
  EXPECT_EQ(v.at("deny_entries").to_number<int>(), 1);
  EXPECT_TRUE(v.at("attachments").as_array().empty()) << "loaded, not attached";
  std::vector<std::string> scope;
  for (const auto& s : v.at("scope").as_array()) {
    scope.push_back(std::string(s.at("listener").as_string()) + " " +
                    std::string(s.at("kind").as_string()) + " " +
                    std::string(s.at("allow_list").as_string()));
  }
  std::sort(scope.begin(), scope.end());
  EXPECT_EQ(scope, (std::vector<std::string>{"192.0.2.10:8080 http no", "[::]:5432 tcp yes"}));
  const auto& counters = v.at("counters").as_array();
  ASSERT_EQ(counters.size(), static_cast<std::size_t>(SLUICE_XDP_REASON_COUNT));
  EXPECT_EQ(counters[0].at("reason").as_string(), bpf::kXdpReasonLabels[0]);
  const auto& top = v.at("top_sources").as_array();
  ASSERT_EQ(top.size(), 1U) << run;
  EXPECT_EQ(top[0].at("source").as_string(), "10.77.0.4/32");
  EXPECT_EQ(top[0].at("syn_drops").to_number<int>(), 93);

  run = ctl({"xdp"});
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_NE(run.out.find("Limits: syn 5/s burst 7, packets 0/s burst 0, syn cookies on, deny "
                         "entries 1"),
            std::string::npos)
      << run;
  EXPECT_EQ(rowStartingWith(run.out, "LISTENER"),
            (std::vector<std::string>{"LISTENER", "KIND", "ALLOW-LIST"}));
  EXPECT_EQ(rowStartingWith(run.out, "[::]:5432"),
            (std::vector<std::string>{"[::]:5432", "tcp", "yes"}));
  EXPECT_EQ(rowStartingWith(run.out, "10.77.0.4/32"),
            (std::vector<std::string>{"10.77.0.4/32", "100", "93", "0"}));
  EXPECT_EQ(rowStartingWith(run.out, "cookie_sent"),
            (std::vector<std::string>{"cookie_sent", "0"}));
}

}  // namespace
}  // namespace sluice::cli
