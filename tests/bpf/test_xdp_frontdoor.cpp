// xdp_frontdoor.bpf.c under BPF_PROG_TEST_RUN: every verdict of the front door on hand-built
// frames, with the real object loaded by the agent's loader (maps unpinned, private to each
// test). Each case checks both the XDP action and that exactly its reason's counter moved.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "app/frontdoor.hpp"
#include "bpf/frontdoor.hpp"
#include "bpf/xdp_maps.hpp"
#include "support/bpf_env.hpp"
#include "xdp_packets.hpp"

namespace sluice::bpf {
namespace {

using sluice::testing::Frame;
using sluice::testing::kAck;
using sluice::testing::kSyn;

net::Cidr cidr(const char* text) {
  auto c = net::parseCidr(text);
  EXPECT_TRUE(c.ok()) << text;
  return c.ok() ? *c : net::Cidr{};
}

class XdpFrontdoorTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string why;
    if (!test::bpffsUsable(&why)) {
      GTEST_SKIP() << why;
    }
    open(false);
  }

  void open(bool syn_proxy) {
    Frontdoor::Options options;
    options.pin_root = "";
    options.syn_proxy = syn_proxy;
    auto fd = Frontdoor::open(options);
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    door_ = std::move(*fd);
    // Listeners: 192.0.2.10:80 and :443 exactly, every IPv4 and IPv6 address on 8443, and a
    // TCP route on 5432 with an allow-list.
    std::array<std::uint8_t, 16> addr{};
    ::inet_pton(AF_INET, "192.0.2.10", addr.data());
    std::vector<ScopeEntry> scope = {
        {scopeKey(false, &addr, 80), {SLUICE_XDP_KIND_HTTP, 0}},
        {scopeKey(false, &addr, 443), {SLUICE_XDP_KIND_HTTPS, 0}},
        {scopeKey(false, nullptr, 8443), {SLUICE_XDP_KIND_HTTPS, 0}},
        {scopeKey(true, nullptr, 8443), {SLUICE_XDP_KIND_HTTPS, 0}},
        {scopeKey(false, nullptr, 5432), {SLUICE_XDP_KIND_TCP, SLUICE_XDP_SCOPE_F_ALLOWLIST}},
        {scopeKey(true, nullptr, 5432), {SLUICE_XDP_KIND_TCP, SLUICE_XDP_SCOPE_F_ALLOWLIST}},
    };
    ASSERT_TRUE(reconcileScope(door_->scopeFd(), scope).ok());
    setConfig(0, 1, 0, 1);
  }

  void setConfig(std::uint64_t syn_interval, std::uint32_t syn_burst, std::uint64_t pkt_interval,
                 std::uint32_t pkt_burst, std::uint32_t flags = 0) {
    sluice_xdp_config c{};
    c.syn_interval_ns = syn_interval;
    c.syn_burst = syn_burst;
    c.pkt_interval_ns = pkt_interval;
    c.pkt_burst = pkt_burst;
    c.flags = flags;
    ASSERT_TRUE(writeXdpConfig(door_->configFd(), c).ok());
  }

  // Runs the frame; returns the XDP action and records which reason counter moved.
  struct Run {
    std::uint32_t action = 0xffff;
    std::string reason;
    std::vector<std::uint8_t> out;
  };
  Run run(const std::vector<std::uint8_t>& frame) {
    Run r;
    auto before = readXdpCounters(door_->statsFd());
    EXPECT_TRUE(before.ok());
    r.out.resize(frame.size() + 256);
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<std::uint32_t>(frame.size());
    opts.data_out = r.out.data();
    opts.data_size_out = static_cast<std::uint32_t>(r.out.size());
    opts.repeat = 1;
    const int err = ::bpf_prog_test_run_opts(door_->programFd(), &opts);
    EXPECT_EQ(err, 0) << std::strerror(errno);
    r.action = opts.retval;
    r.out.resize(opts.data_size_out);
    auto after = readXdpCounters(door_->statsFd());
    EXPECT_TRUE(after.ok());
    for (std::size_t i = 0; i < after->size(); ++i) {
      const std::uint64_t delta = (*after)[i] - (*before)[i];
      if (delta != 0) {
        EXPECT_EQ(delta, 1u) << kXdpReasonLabels[i];
        EXPECT_TRUE(r.reason.empty()) << "two reasons: " << r.reason << ", " << kXdpReasonLabels[i];
        r.reason = std::string(kXdpReasonLabels[i]);
      }
    }
    return r;
  }
  Run run(const Frame& f) { return run(testing::buildFrame(f)); }

  void deny(const char* range) {
    ASSERT_TRUE(addDeny(door_->denyMaps(), cidr(range), SLUICE_XDP_ORIGIN_CLI).ok());
  }

  std::unique_ptr<Frontdoor> door_;
};

#define EXPECT_VERDICT(run_expr, action_, reason_) \
  do {                                             \
    const auto r_ = (run_expr);                    \
    EXPECT_EQ(r_.action, (action_));               \
    EXPECT_EQ(r_.reason, (reason_));               \
  } while (false)

TEST_F(XdpFrontdoorTest, InScopeSynPasses) {
  EXPECT_VERDICT(run(Frame{}), XDP_PASS, "pass");
}

TEST_F(XdpFrontdoorTest, OtherPortsAndAddressesPassUntouched) {
  Frame ssh;
  ssh.dport = 22;
  EXPECT_VERDICT(run(ssh), XDP_PASS, "out_of_scope");
  Frame other_addr;  // port 80 is scoped to 192.0.2.10 only
  other_addr.dst = "192.0.2.11";
  EXPECT_VERDICT(run(other_addr), XDP_PASS, "out_of_scope");
  Frame kubelet;
  kubelet.dport = 10250;
  deny("10.0.0.0/8");  // even a denied source reaches what the ingress does not own
  EXPECT_VERDICT(run(kubelet), XDP_PASS, "out_of_scope");
}

TEST_F(XdpFrontdoorTest, WildcardScopeMatchesAnyAddress) {
  Frame f;
  f.dst = "198.51.100.7";
  f.dport = 8443;
  EXPECT_VERDICT(run(f), XDP_PASS, "pass");
  Frame f6;
  f6.src = "2001:db8::1";
  f6.dst = "2001:db8:ffff::9";
  f6.dport = 8443;
  EXPECT_VERDICT(run(f6), XDP_PASS, "pass");
}

TEST_F(XdpFrontdoorTest, DeniedIpv4SourceDropped) {
  deny("10.1.0.0/16");
  Frame bad;
  bad.src = "10.1.2.3";
  EXPECT_VERDICT(run(bad), XDP_DROP, "denied");
  bad.flags = kAck;  // every packet, not only SYNs
  EXPECT_VERDICT(run(bad), XDP_DROP, "denied");
  Frame good;
  good.src = "10.2.0.1";
  EXPECT_VERDICT(run(good), XDP_PASS, "pass");
}

TEST_F(XdpFrontdoorTest, DeniedIpv6SourceDropped) {
  deny("2001:db8:bad::/48");
  Frame bad;
  bad.src = "2001:db8:bad:1::5";
  bad.dst = "2001:db8::10";
  bad.dport = 8443;
  EXPECT_VERDICT(run(bad), XDP_DROP, "denied");
  Frame good = bad;
  good.src = "2001:db8:bee::5";
  EXPECT_VERDICT(run(good), XDP_PASS, "pass");
}

TEST_F(XdpFrontdoorTest, VlanTagsAreParsed) {
  deny("10.1.0.0/16");
  Frame f;
  f.src = "10.1.2.3";
  f.vlans = 1;
  EXPECT_VERDICT(run(f), XDP_DROP, "denied");
  f.vlans = 2;
  EXPECT_VERDICT(run(f), XDP_DROP, "denied");
  f.vlans = 3;
  EXPECT_VERDICT(run(f), XDP_PASS, "unparsed");
}

TEST_F(XdpFrontdoorTest, Ipv4OptionsAreSkipped) {
  deny("10.1.0.0/16");
  Frame f;
  f.src = "10.1.2.3";
  f.ip_option_words = 3;
  EXPECT_VERDICT(run(f), XDP_DROP, "denied");
  f.src = "10.2.0.1";
  EXPECT_VERDICT(run(f), XDP_PASS, "pass");
}

TEST_F(XdpFrontdoorTest, Ipv6ExtensionHeadersUpToTheLimit) {
  deny("2001:db8:bad::/48");
  Frame f;
  f.src = "2001:db8:bad::1";
  f.dst = "2001:db8::10";
  f.dport = 8443;
  f.v6_ext = SLUICE_XDP_MAX_V6_EXT;
  EXPECT_VERDICT(run(f), XDP_DROP, "denied");
  f.v6_ext = SLUICE_XDP_MAX_V6_EXT + 1;
  EXPECT_VERDICT(run(f), XDP_PASS, "unparsed");
}

TEST_F(XdpFrontdoorTest, FragmentsPassUninspected) {
  deny("10.1.0.0/16");
  Frame f;
  f.src = "10.1.2.3";
  f.fragment = true;
  EXPECT_VERDICT(run(f), XDP_PASS, "fragment");
  Frame f6;
  f6.src = "2001:db8::1";
  f6.dst = "2001:db8::10";
  f6.dport = 8443;
  f6.fragment = true;
  EXPECT_VERDICT(run(f6), XDP_PASS, "fragment");
}

TEST_F(XdpFrontdoorTest, NonTcpAndNonIpPass) {
  Frame udp;
  udp.proto = 17;
  EXPECT_VERDICT(run(udp), XDP_PASS, "not_tcp");
  Frame arp;
  arp.ethertype = 0x0806;
  EXPECT_VERDICT(run(arp), XDP_PASS, "not_ip");
  // Type fields 0 and 1 (802.3 lengths) are not IP either: no parser sentinel may equal them.
  for (const std::uint8_t type : {std::uint8_t{0}, std::uint8_t{1}}) {
    auto frame = testing::buildFrame(Frame{});
    frame[12] = 0;
    frame[13] = type;
    EXPECT_VERDICT(run(frame), XDP_PASS, "not_ip");
  }
}

TEST_F(XdpFrontdoorTest, ShortPacketsPass) {
  auto frame = testing::buildFrame(Frame{});
  EXPECT_VERDICT(run(std::vector<std::uint8_t>(frame.begin(), frame.begin() + 14 + 10)), XDP_PASS,
                 "short");  // IPv4 header cut
  EXPECT_VERDICT(run(std::vector<std::uint8_t>(frame.begin(), frame.begin() + 14 + 20 + 12)),
                 XDP_PASS, "short");  // TCP header cut
  auto bad_ihl = frame;
  bad_ihl[14] = 0x44;  // IHL 4
  EXPECT_VERDICT(run(bad_ihl), XDP_PASS, "short");
  Frame v6;
  v6.src = "2001:db8::1";
  v6.dst = "2001:db8::10";
  auto f6 = testing::buildFrame(v6);
  EXPECT_VERDICT(run(std::vector<std::uint8_t>(f6.begin(), f6.begin() + 14 + 30)), XDP_PASS,
                 "short");
}

TEST_F(XdpFrontdoorTest, AllowListedPortRefusesOthers) {
  const std::vector<AclEntry> acl = {
      {5432, cidr("10.0.0.0/8"), SLUICE_XDP_ACL_ALLOW},
      {5432, cidr("10.9.0.0/16"), SLUICE_XDP_ACL_DENY},
      {5432, cidr("2001:db8:1::/48"), SLUICE_XDP_ACL_ALLOW},
      {6000, cidr("0.0.0.0/0"), SLUICE_XDP_ACL_ALLOW},  // another port: no effect on 5432
  };
  ASSERT_TRUE(reconcileAcl(door_->aclMaps(), acl).ok());
  Frame f;
  f.dst = "198.51.100.1";
  f.dport = 5432;
  f.src = "10.1.2.3";
  EXPECT_VERDICT(run(f), XDP_PASS, "pass");
  f.src = "10.9.0.1";  // the longer DENY prefix wins
  EXPECT_VERDICT(run(f), XDP_DROP, "not_allowed");
  f.src = "192.168.1.1";  // on no list
  EXPECT_VERDICT(run(f), XDP_DROP, "not_allowed");
  Frame f6;
  f6.dst = "2001:db8::10";
  f6.dport = 5432;
  f6.src = "2001:db8:1::7";
  EXPECT_VERDICT(run(f6), XDP_PASS, "pass");
  f6.src = "2001:db8:2::7";
  EXPECT_VERDICT(run(f6), XDP_DROP, "not_allowed");
  Frame http;  // HTTP ports carry no ACL: host-level lists need L7 (the agent enforces those)
  http.src = "192.168.1.1";
  EXPECT_VERDICT(run(http), XDP_PASS, "pass");
}

// The agent's translation of a TCP route's source ranges (app::tcpRouteAcl and the scope flags of
// app::listenerScope) judged by the kernel: a deny range wins over an allow range around it and
// also over an allow range inside it, as model::SourceRanges::permits says.
TEST_F(XdpFrontdoorTest, TcpRouteRangesFromTheAgentMatchTheUserspaceRule) {
  model::DesiredState desired;
  model::TcpRoute route{5432, "default/db:5432"};
  route.sources.allow = *net::parseCidrs("10.1.2.0/24, 192.168.0.0/16");
  route.sources.allow_listed = true;
  route.sources.deny = *net::parseCidrs("10.1.0.0/16");
  desired.tcp_routes.push_back(route);
  desired.tcp_routes.push_back(model::TcpRoute{6000, "default/open:6000"});
  ASSERT_TRUE(reconcileAcl(door_->aclMaps(), app::tcpRouteAcl(desired)).ok());
  const auto scope = app::listenerScope(
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("0.0.0.0"), 8080), std::nullopt,
      &desired);
  ASSERT_TRUE(reconcileScope(door_->scopeFd(), scope).ok());
  Frame f;
  f.dst = "198.51.100.1";
  for (const char* src : {"192.168.1.1", "10.1.2.3", "10.1.9.9", "10.2.3.4", "192.0.2.1"}) {
    SCOPED_TRACE(src);
    f.src = src;
    f.dport = 5432;
    const bool permitted = route.sources.permits(src);
    EXPECT_VERDICT(run(f), permitted ? XDP_PASS : XDP_DROP, permitted ? "pass" : "not_allowed");
    f.dport = 6000;  // a route without ranges
    EXPECT_VERDICT(run(f), XDP_PASS, "pass");
  }
  EXPECT_TRUE(route.sources.permits("192.168.1.1"));
  EXPECT_FALSE(route.sources.permits("10.1.2.3")) << "the case that needs the left-out entry";
}

TEST_F(XdpFrontdoorTest, SynRateLimitedPerSource) {
  setConfig(1'000'000'000ull, 3, 0, 1);  // 1 SYN/s, burst 3
  Frame flood;
  flood.src = "10.5.5.5";
  for (int i = 0; i < 3; ++i) {
    flood.sport = static_cast<std::uint16_t>(41000 + i);
    EXPECT_VERDICT(run(flood), XDP_PASS, "pass");
  }
  flood.sport = 41010;
  EXPECT_VERDICT(run(flood), XDP_DROP, "syn_rate");
  Frame ack = flood;  // established traffic from the same source is not a SYN
  ack.flags = kAck;
  EXPECT_VERDICT(run(ack), XDP_PASS, "pass");
  Frame other;
  other.src = "10.6.6.6";
  EXPECT_VERDICT(run(other), XDP_PASS, "pass");

  auto top = topSources(door_->rateFd(), 10);
  ASSERT_TRUE(top.ok());
  ASSERT_FALSE(top->empty());
  EXPECT_EQ(top->front().source.text(), "10.5.5.5/32");
  EXPECT_EQ(top->front().bucket.syns, 4u);
  EXPECT_EQ(top->front().bucket.syn_drops, 1u);
}

TEST_F(XdpFrontdoorTest, Ipv6SourcesShareABucketPerSlash64) {
  setConfig(1'000'000'000ull, 1, 0, 1);
  Frame a;
  a.src = "2001:db8:0:1::1";
  a.dst = "2001:db8::10";
  a.dport = 8443;
  EXPECT_VERDICT(run(a), XDP_PASS, "pass");
  Frame b = a;
  b.src = "2001:db8:0:1:ffff::2";  // same /64
  EXPECT_VERDICT(run(b), XDP_DROP, "syn_rate");
  Frame c = a;
  c.src = "2001:db8:0:2::1";  // next /64
  EXPECT_VERDICT(run(c), XDP_PASS, "pass");
}

TEST_F(XdpFrontdoorTest, PacketRateLimitedPerSource) {
  setConfig(0, 1, 1'000'000'000ull, 2);
  Frame f;
  f.flags = kAck;
  EXPECT_VERDICT(run(f), XDP_PASS, "pass");
  EXPECT_VERDICT(run(f), XDP_PASS, "pass");
  EXPECT_VERDICT(run(f), XDP_DROP, "packet_rate");
}

TEST_F(XdpFrontdoorTest, DenyReconcileRemovesWhatTheListDoesNotName) {
  deny("203.0.113.0/24");  // an emergency entry
  deny("2001:db8:dead::/48");
  const std::vector<net::Cidr> want = {cidr("10.1.0.0/16"), cidr("2001:db8:bad::/48")};
  auto n = reconcileDeny(door_->denyMaps(), want, SLUICE_XDP_ORIGIN_CONFIGMAP);
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(n->added, 2u);
  EXPECT_EQ(n->removed, 2u);
  auto listed = listDeny(door_->denyMaps());
  ASSERT_TRUE(listed.ok());
  std::vector<std::string> texts;
  for (const auto& e : *listed) {
    texts.push_back(e.range.text());
    EXPECT_EQ(e.origin, static_cast<std::uint32_t>(SLUICE_XDP_ORIGIN_CONFIGMAP));
  }
  EXPECT_EQ(texts, (std::vector<std::string>{"10.1.0.0/16", "2001:db8:bad::/48"}));
  Frame was_denied;
  was_denied.src = "203.0.113.5";
  EXPECT_VERDICT(run(was_denied), XDP_PASS, "pass");
  auto again = reconcileDeny(door_->denyMaps(), want, SLUICE_XDP_ORIGIN_CONFIGMAP);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->kept, 2u);
  EXPECT_EQ(again->added + again->removed, 0u);
}

// The synproxy program loads where the raw cookie helpers exist (6.0+) and judges like the plain
// one; without a listener behind the port it leaves SYNs to the kernel.
TEST_F(XdpFrontdoorTest, SynProxyProgramLoadsWhereHelpersExist) {
  if (!rawSyncookieHelpers()) {
    GTEST_SKIP() << "no raw SYN-cookie helpers for XDP on this kernel (6.0+)";
  }
  door_.reset();
  open(true);
  ASSERT_TRUE(door_->synProxy()) << door_->synProxyNote();
  setConfig(0, 1, 0, 1, SLUICE_XDP_CFG_F_SYNCOOKIE | SLUICE_XDP_CFG_F_SYNCOOKIE_ALWAYS);
  deny("10.1.0.0/16");
  Frame bad;
  bad.src = "10.1.2.3";
  EXPECT_VERDICT(run(bad), XDP_DROP, "denied");
  EXPECT_VERDICT(run(Frame{}), XDP_PASS, "pass");
}

// The cookie path against real listeners. BPF_PROG_TEST_RUN runs XDP as if received on the
// loopback device of the caller's network namespace, so bpf_skc_lookup_tcp finds listeners
// there: each test gets a private namespace (tcp_syncookies=2, so the kernel's own SYN-ACKs
// are cookies and stamp the listener's overflow time) and goes back to the original one after.
// What this proves: the trigger (queue full and a recent overflow), the SYN-ACK's bytes
// (addresses, checksums, ack number, MSS), and that the program accepts exactly the ACK that
// answers its cookie. tests/bpf/xdp_synproxy_test.sh proves the kernel then makes the
// connection and that it carries data.
class XdpSynCookieTest : public XdpFrontdoorTest {
protected:
  void SetUp() override {
    XdpFrontdoorTest::SetUp();
    if (IsSkipped()) {
      return;
    }
    if (!rawSyncookieHelpers()) {
      GTEST_SKIP() << "no raw SYN-cookie helpers for XDP on this kernel (6.0+): the front door "
                      "runs without --xdp-syn-proxy there";
    }
    home_ns_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(home_ns_, 0);
    if (::unshare(CLONE_NEWNET) != 0) {
      GTEST_SKIP() << "a private network namespace (unshare(CLONE_NEWNET)) needs CAP_SYS_ADMIN: "
                   << std::strerror(errno);
    }
    moved_ = true;
    std::ofstream("/proc/sys/net/ipv4/tcp_syncookies") << "2\n";
    ASSERT_EQ(std::system("ip link set lo up"), 0);
    door_.reset();
    open(true);
    ASSERT_TRUE(door_->synProxy()) << door_->synProxyNote();
    setConfig(0, 1, 0, 1, SLUICE_XDP_CFG_F_SYNCOOKIE);
    scope_ = {{scopeKey(false, nullptr, 8443), {SLUICE_XDP_KIND_HTTPS, 0}}};
  }
  void TearDown() override {
    for (int fd : fds_) {
      ::close(fd);
    }
    if (moved_) {
      EXPECT_EQ(::setns(home_ns_, CLONE_NEWNET), 0) << std::strerror(errno);
    }
    if (home_ns_ >= 0) {
      ::close(home_ns_);
    }
  }

  // A listener on the loopback address of `family`; returns its port and puts it in scope.
  std::uint16_t listener(int family, int backlog) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof(*a);
    }
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
    EXPECT_EQ(::listen(fd, backlog), 0);
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), 0);
    const std::uint16_t port =
        ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    std::array<std::uint8_t, 16> addr{};
    ::inet_pton(family, family == AF_INET ? "127.0.0.1" : "::1", addr.data());
    scope_.push_back({scopeKey(family == AF_INET6, &addr, port), {SLUICE_XDP_KIND_HTTP, 0}});
    EXPECT_TRUE(reconcileScope(door_->scopeFd(), scope_).ok());
    return port;
  }

  // A real connection through the kernel: with tcp_syncookies=2 its SYN-ACK is a kernel cookie,
  // which stamps the listener's last overflow.
  void stampOverflow(int family, std::uint16_t port) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    fds_.push_back(fd);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(port);
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(port);
      a->sin6_addr = in6addr_loopback;
      len = sizeof(*a);
    }
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len), 0) << std::strerror(errno);
  }

  static Frame syn(const char* src, const char* dst, std::uint16_t port) {
    Frame f;
    f.src = src;
    f.dst = dst;
    f.dport = port;
    f.seq = 1000;
    return f;
  }

  int home_ns_ = -1;
  bool moved_ = false;  // into the private namespace: go back in TearDown
  std::vector<int> fds_;
  std::vector<ScopeEntry> scope_;
};

// Checks a SYN-ACK the program built from `in` (a SYN with seq 1000, MSS 1460); returns its
// cookie (sequence number).
std::uint32_t checkSynAck(const std::vector<std::uint8_t>& in, const std::vector<std::uint8_t>& out,
                          bool v6) {
  const std::size_t l3 = 14, ip_len = v6 ? 40 : 20, tcp = l3 + ip_len;
  EXPECT_EQ(out.size(), tcp + 24);
  if (out.size() != tcp + 24) {
    return 0;
  }
  EXPECT_TRUE(std::equal(in.begin() + 6, in.begin() + 12, out.begin())) << "dst MAC = src MAC";
  EXPECT_TRUE(std::equal(in.begin(), in.begin() + 6, out.begin() + 6)) << "src MAC = dst MAC";
  const std::size_t addr = v6 ? 8 : 12, alen = v6 ? 16 : 4;
  EXPECT_TRUE(std::equal(in.begin() + l3 + addr, in.begin() + l3 + addr + alen,
                         out.begin() + l3 + addr + alen))
      << "addresses swapped";
  std::uint32_t pseudo = 6 + 24;
  for (std::size_t i = 0; i < 2 * alen; i += 2) {
    pseudo += static_cast<std::uint32_t>(out[l3 + addr + i] << 8 | out[l3 + addr + i + 1]);
  }
  if (!v6) {
    EXPECT_EQ(testing::inetChecksum(out.data() + l3, 20), 0) << "IPv4 header checksum";
  }
  EXPECT_EQ(testing::inetChecksum(out.data() + tcp, 24, pseudo), 0) << "TCP checksum";
  auto be32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(out[at] << 24 | out[at + 1] << 16 | out[at + 2] << 8 |
                                      out[at + 3]);
  };
  EXPECT_EQ(out[tcp + 13], kSyn | kAck) << "flags";
  EXPECT_EQ(be32(tcp + 8), 1001u) << "acks the SYN";
  EXPECT_EQ(out[tcp + 20], 2) << "MSS option";
  const unsigned mss = out[tcp + 22] << 8 | out[tcp + 23];
  EXPECT_GT(mss, 500u);
  EXPECT_LE(mss, 1460u) << "the cookie encodes at most the client's MSS";
  return be32(tcp + 4);
}

TEST_F(XdpSynCookieTest, FullQueueAfterAnOverflowGetsACookieThatItsAckRedeems) {
  for (const bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const int family = v6 ? AF_INET6 : AF_INET;
    const char* src = v6 ? "2001:db8::7" : "10.0.0.7";
    const char* dst = v6 ? "::1" : "127.0.0.1";
    const std::uint16_t port = listener(family, 0);  // backlog 0: the SYN queue is always full
    const Frame s = syn(src, dst, port);
    // Full, but no overflow yet: the kernel would refuse the cookie ACK, so no cookie.
    EXPECT_VERDICT(run(s), XDP_PASS, "pass");
    stampOverflow(family, port);
    const auto in = testing::buildFrame(s);
    const Run r = run(in);
    ASSERT_EQ(r.action, XDP_TX);
    ASSERT_EQ(r.reason, "cookie_sent");
    const std::uint32_t cookie = checkSynAck(in, r.out, v6);

    Frame ack = s;
    ack.flags = kAck;
    ack.seq = 1001;
    ack.ack = cookie + 1;
    ack.mss_option = false;
    EXPECT_VERDICT(run(ack), XDP_PASS, "cookie_valid");
    // Not cookie + 1 + small n: the low 24 bits carry hash + MSS index, so a neighbour can be
    // another valid cookie with another MSS (the kernel's own check accepts it alike).
    ack.ack = cookie + 1 + 0x00800000;
    EXPECT_VERDICT(run(ack), XDP_DROP, "cookie_invalid");
    Frame other = ack;  // the right cookie, a different client port: not this handshake's
    other.ack = cookie + 1;
    other.sport = static_cast<std::uint16_t>(s.sport + 1);
    EXPECT_VERDICT(run(other), XDP_DROP, "cookie_invalid");
  }
}

TEST_F(XdpSynCookieTest, RoomInTheQueueLeavesSynsToTheKernelUnlessAlways) {
  const std::uint16_t port = listener(AF_INET, 64);
  stampOverflow(AF_INET, port);
  const Frame s = syn("10.0.0.8", "127.0.0.1", port);
  EXPECT_VERDICT(run(s), XDP_PASS, "pass");
  setConfig(0, 1, 0, 1, SLUICE_XDP_CFG_F_SYNCOOKIE | SLUICE_XDP_CFG_F_SYNCOOKIE_ALWAYS);
  EXPECT_VERDICT(run(s), XDP_TX, "cookie_sent");
  setConfig(0, 1, 0, 1, 0);  // the synproxy program with cookies off is the plain one
  EXPECT_VERDICT(run(s), XDP_PASS, "pass");
}

TEST_F(XdpSynCookieTest, LimitsStillComeFirstAndNoListenerMeansNoCookie) {
  const std::uint16_t port = listener(AF_INET, 0);
  stampOverflow(AF_INET, port);
  deny("10.9.0.0/16");
  EXPECT_VERDICT(run(syn("10.9.0.1", "127.0.0.1", port)), XDP_DROP, "denied");
  Frame nobody = syn("10.0.0.9", "127.0.0.1", port);
  nobody.dport = 8443;  // in scope (wildcard), but nothing listens there
  EXPECT_VERDICT(run(nobody), XDP_PASS, "pass");
  Frame stray = nobody;  // an ACK with no listener behind it is the kernel's (RST) business
  stray.flags = kAck;
  EXPECT_VERDICT(run(stray), XDP_PASS, "pass");
}

TEST(XdpModeTest, Parse) {
  EXPECT_EQ(*parseXdpMode("native"), XdpMode::kNative);
  EXPECT_EQ(*parseXdpMode("generic"), XdpMode::kGeneric);
  EXPECT_EQ(*parseXdpMode("auto"), XdpMode::kAuto);
  EXPECT_FALSE(parseXdpMode("driver").ok());
}

}  // namespace
}  // namespace sluice::bpf
