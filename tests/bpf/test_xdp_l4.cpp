// xdp_l4.bpf.c under BPF_PROG_TEST_RUN, in a network namespace of its own with two veth pairs:
// c0 (10.8.0.1/24, the client side; client 10.8.0.5 has a permanent neighbour entry) and b0
// (10.9.0.1/24, the backend side; backends 10.9.0.10-12 likewise), so bpf_fib_lookup has real
// routes and neighbours to find. Every rewritten frame's IPv4, TCP and ICMP checksums are
// recomputed here from scratch (not incrementally, as the program does) and must verify.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bpf/frontdoor.hpp"
#include "bpf/l4_fastpath.hpp"
#include "bpf/l4_maps.hpp"
#include "bpf/xdp_maps.hpp"
#include "lb/maglev.hpp"
#include "support/bpf_env.hpp"
#include "xdp_packets.hpp"

namespace sluice::bpf {
namespace {

using sluice::testing::inetChecksum;

constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;
constexpr std::uint16_t kListenPort = 5432, kBackendPort = 8080;
constexpr std::uint16_t kSnatLo = 61000, kSnatHi = 61999;
const std::uint8_t kClientMac[6] = {2, 0, 0, 0, 8, 5};
const std::uint8_t kBackendMac[6] = {2, 0, 0, 0, 9, 0x10};

std::uint32_t ip(const char* s) {
  std::uint32_t a = 0;
  ::inet_pton(AF_INET, s, &a);
  return a;
}

struct Tcp4 {
  std::uint32_t src = ip("10.8.0.5");
  std::uint32_t dst = ip("10.8.0.1");
  std::uint16_t sport = 40000;
  std::uint16_t dport = kListenPort;
  std::uint8_t flags = kSyn;
  std::uint8_t ttl = 64;
  std::string payload;
};

void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

// Sum of the TCP/IPv4 pseudo-header, for a from-scratch TCP checksum check.
std::uint32_t pseudo(const std::uint8_t* iph, std::size_t l4_len) {
  std::uint32_t sum = 0;
  for (int i = 12; i < 20; i += 2) {
    sum += get16(iph + i);
  }
  return sum + iph[9] + static_cast<std::uint32_t>(l4_len);
}

// Ethernet + IPv4 (no options) + TCP (no options) + payload, checksums computed here.
std::vector<std::uint8_t> frame(const Tcp4& t) {
  std::vector<std::uint8_t> f(14 + 20 + 20 + t.payload.size(), 0);
  std::memcpy(f.data(), "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00", 14);
  std::uint8_t* iph = f.data() + 14;
  iph[0] = 0x45;
  put16(iph + 2, static_cast<std::uint16_t>(20 + 20 + t.payload.size()));
  put16(iph + 6, 0x4000);  // DF
  iph[8] = t.ttl;
  iph[9] = IPPROTO_TCP;
  std::memcpy(iph + 12, &t.src, 4);
  std::memcpy(iph + 16, &t.dst, 4);
  put16(iph + 10, inetChecksum(iph, 20));
  std::uint8_t* tcp = iph + 20;
  put16(tcp, t.sport);
  put16(tcp + 2, t.dport);
  put16(tcp + 4, 0x1234);
  tcp[12] = 5 << 4;
  tcp[13] = t.flags;
  put16(tcp + 14, 65535);
  std::memcpy(tcp + 20, t.payload.data(), t.payload.size());
  put16(tcp + 16, inetChecksum(tcp, 20 + t.payload.size(), pseudo(iph, 20 + t.payload.size())));
  return f;
}

// The frame's IPv4 header and its TCP (or ICMP) checksums all verify.
void expectChecksumsValid(const std::vector<std::uint8_t>& f) {
  ASSERT_GE(f.size(), 34u);
  const std::uint8_t* iph = f.data() + 14;
  EXPECT_EQ(inetChecksum(iph, 20), 0) << "IPv4 header checksum";
  const std::size_t l4_len = get16(iph + 2) - 20;
  ASSERT_EQ(f.size(), 14 + 20 + l4_len);
  if (iph[9] == IPPROTO_TCP) {
    // inetChecksum takes the initial sum in host order words; feed it the pseudo-header.
    EXPECT_EQ(inetChecksum(iph + 20, l4_len, pseudo(iph, l4_len)), 0) << "TCP checksum";
  } else {
    EXPECT_EQ(inetChecksum(iph + 20, l4_len), 0) << "ICMP checksum";
  }
}

struct Parsed {
  std::uint32_t src = 0, dst = 0;
  std::uint16_t sport = 0, dport = 0;
  std::uint8_t ttl = 0, flags = 0;
  std::string payload;
};

// An ICMP fragmentation-needed frame (type 3 code 4, next-hop MTU `mtu`) from `src` to `dst`
// (network order), quoting the 28 bytes at `quoted` (an IPv4 header and 8 bytes of TCP), with
// valid IPv4 and ICMP checksums. The MACs are left zero: the program takes them from the FIB.
std::vector<std::uint8_t> fragNeeded(std::uint32_t src, std::uint32_t dst,
                                     const std::uint8_t* quoted, std::uint16_t mtu) {
  std::vector<std::uint8_t> f(14 + 20 + 8 + 28, 0);
  f[12] = 0x08;
  f[13] = 0x00;
  std::uint8_t* iph = f.data() + 14;
  iph[0] = 0x45;
  put16(iph + 2, 20 + 8 + 28);
  iph[8] = 64;
  iph[9] = IPPROTO_ICMP;
  std::memcpy(iph + 12, &src, 4);
  std::memcpy(iph + 16, &dst, 4);
  put16(iph + 10, inetChecksum(iph, 20));
  std::uint8_t* icmp = iph + 20;
  icmp[0] = 3;
  icmp[1] = 4;
  put16(icmp + 6, mtu);
  std::memcpy(icmp + 8, quoted, 28);
  put16(icmp + 2, inetChecksum(icmp, 8 + 28));
  return f;
}

Parsed parse(const std::vector<std::uint8_t>& f) {
  Parsed p;
  const std::uint8_t* iph = f.data() + 14;
  std::memcpy(&p.src, iph + 12, 4);
  std::memcpy(&p.dst, iph + 16, 4);
  p.ttl = iph[8];
  p.sport = get16(iph + 20);
  p.dport = get16(iph + 22);
  p.flags = iph[20 + 13];
  p.payload.assign(reinterpret_cast<const char*>(iph + 40), f.size() - 54);
  return p;
}

struct Verdict {
  int action = -1;
  std::vector<std::uint8_t> out;
};

int ifindex(const char* name) {
  return static_cast<int>(::if_nametoindex(name));
}

class XdpL4Test : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string why;
    if (!test::bpffsUsable(&why)) {
      skip_ = why;
      return;
    }
    // A namespace of our own: routes, neighbours and forwarding are ours to set.
    if (::unshare(CLONE_NEWNET) != 0) {
      skip_ = "unshare(CLONE_NEWNET) failed";
      return;
    }
    const char* setup =
        "ip link set lo up && ip link add c0 type veth peer name c1 && "
        "ip link add b0 type veth peer name b1 && ip addr add 10.8.0.1/24 dev c0 && "
        "ip addr add 10.9.0.1/24 dev b0 && for d in c0 c1 b0 b1; do ip link set $d up; done && "
        "ip neigh add 10.8.0.5 lladdr 02:00:00:00:08:05 dev c0 nud permanent && "
        "for i in 10 11 12; do ip neigh add 10.9.0.$i lladdr 02:00:00:00:09:10 dev b0 "
        "nud permanent; done && echo 1 > /proc/sys/net/ipv4/conf/all/forwarding && "
        "echo 1 > /proc/sys/net/ipv4/conf/c0/forwarding && "
        "echo 1 > /proc/sys/net/ipv4/conf/b0/forwarding";
    if (std::system(setup) != 0) {
      skip_ = "could not build the test namespace (iproute2?)";
    }
  }

  void SetUp() override {
    if (!skip_.empty()) {
      GTEST_SKIP() << skip_;
    }
    L4FastPath::Options o;
    o.pin_root = "";
    auto l4 = L4FastPath::open(o);
    ASSERT_TRUE(l4.ok()) << l4.error().message();
    l4_ = std::move(*l4);
    m_ = l4_->maps();
    sluice_l4_config c{};
    c.idle_timeout_ns = 300'000'000'000ULL;
    c.closing_timeout_ns = 10'000'000'000ULL;
    c.snat_port_lo = kSnatLo;
    c.snat_port_hi = kSnatHi;
    c.flags = SLUICE_L4_CFG_F_ENABLED;
    ASSERT_TRUE(writeL4Config(m_.config, c).ok());
    std::map<std::uint32_t, std::uint32_t> snat = {
        {static_cast<std::uint32_t>(ifindex("b0")), ip("10.9.0.1")},
        {static_cast<std::uint32_t>(ifindex("c0")), ip("10.8.0.1")}};
    ASSERT_TRUE(reconcileSnat(m_.snat, snat).ok());
    setBackends({"10.9.0.10"});
  }

  // Service 3 on *:5432 with these backends (ids 0..n-1) on kBackendPort.
  void setBackends(const std::vector<std::string>& addrs, std::uint32_t first_id = 0) {
    std::vector<lb::MaglevBackend> mb;
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      sluice_l4_backend b{};
      b.addr = ip(addrs[i].c_str());
      b.port = ::htons(kBackendPort);
      b.state = SLUICE_L4_BACKEND_ACTIVE;
      b.service_id = 3;
      const auto id = static_cast<std::uint32_t>(first_id + i);
      ASSERT_TRUE(writeL4Backend(m_.backends, id, b).ok());
      mb.push_back({addrs[i] + ":8080", id});
    }
    auto table = lb::buildMaglevTable(mb, 251);
    ASSERT_TRUE(table.ok());
    ASSERT_TRUE(swapMaglevTable(m_.ring, 3, *table).ok());
    L4ServiceEntry e{};
    e.key.port = ::htons(kListenPort);
    e.key.proto = IPPROTO_TCP;
    e.value = {3, SLUICE_L4_SVC_F_FAST, 251, static_cast<std::uint32_t>(addrs.size())};
    ASSERT_TRUE(reconcileL4Services(m_.services, {e}).ok());
  }

  Verdict run(const std::vector<std::uint8_t>& in, const char* ingress = "c0") {
    Verdict r;
    r.out.resize(in.size() + 256);
    xdp_md ctx{};
    ctx.data_end = static_cast<std::uint32_t>(in.size());
    ctx.ingress_ifindex = static_cast<std::uint32_t>(ifindex(ingress));
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = in.data();
    opts.data_size_in = static_cast<std::uint32_t>(in.size());
    opts.data_out = r.out.data();
    opts.data_size_out = static_cast<std::uint32_t>(r.out.size());
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
    opts.repeat = 1;
    const int err = ::bpf_prog_test_run_opts(prog(), &opts);
    EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(-err);
    r.action = static_cast<int>(opts.retval);
    r.out.resize(opts.data_size_out);
    return r;
  }
  Verdict run(const Tcp4& t, const char* ingress = "c0") { return run(frame(t), ingress); }

  virtual int prog() { return l4_->programFd(); }

  std::uint64_t counter(sluice_l4_reason r) {
    auto c = readL4Counters(m_.stats);
    EXPECT_TRUE(c.ok());
    return c.ok() ? (*c)[r] : 0;
  }

  // A SYN from the client, forwarded; returns the rewritten frame's view.
  Parsed open(std::uint16_t sport = 40000) {
    Tcp4 syn;
    syn.sport = sport;
    const Verdict r = run(syn);
    EXPECT_EQ(r.action, XDP_REDIRECT) << "SYN from port " << sport;
    expectChecksumsValid(r.out);
    return parse(r.out);
  }

  // The backend's reply to `fwd` (the forwarded packet), run in from b0.
  Tcp4 replyTo(const Parsed& fwd, std::uint8_t flags, std::string payload = "") {
    Tcp4 t;
    t.src = fwd.dst;
    t.dst = fwd.src;
    t.sport = fwd.dport;
    t.dport = fwd.sport;
    t.flags = flags;
    t.payload = std::move(payload);
    return t;
  }

  static inline std::string skip_;
  std::unique_ptr<L4FastPath> l4_;
  L4MapFds m_;
};

TEST_F(XdpL4Test, SynIsNatedToTheBackendWithValidChecksums) {
  const Verdict r = run(Tcp4{});
  ASSERT_EQ(r.action, XDP_REDIRECT);  // out of b0, not the receiving c0
  expectChecksumsValid(r.out);
  const Parsed p = parse(r.out);
  EXPECT_EQ(p.dst, ip("10.9.0.10"));
  EXPECT_EQ(p.dport, kBackendPort);
  EXPECT_EQ(p.src, ip("10.9.0.1"));  // SNAT: the node's address on the backend side
  EXPECT_GE(p.sport, kSnatLo);
  EXPECT_LE(p.sport, kSnatHi);
  EXPECT_EQ(p.ttl, 63);
  EXPECT_EQ(std::memcmp(r.out.data(), kBackendMac, 6), 0) << "destination MAC from the FIB";
  EXPECT_EQ(counter(SLUICE_L4_NEW_FLOW), 1u);
  auto flows = listL4Flows(m_.flows);
  ASSERT_TRUE(flows.ok());
  ASSERT_EQ(flows->size(), 1u);
  EXPECT_EQ((*flows)[0].value.backend_id, 0u);
  EXPECT_EQ(::ntohs((*flows)[0].value.snat_port), p.sport);
}

TEST_F(XdpL4Test, DataBothWaysWithPayloadChecksumsAndCounters) {
  const Parsed fwd = open();
  // Reply SYN-ACK, then data each way: every frame rewritten, every checksum valid.
  Verdict r = run(replyTo(fwd, kSyn | kAck), "b0");
  ASSERT_EQ(r.action, XDP_REDIRECT);
  expectChecksumsValid(r.out);
  Parsed back = parse(r.out);
  EXPECT_EQ(back.src, ip("10.8.0.1"));
  EXPECT_EQ(back.sport, kListenPort);
  EXPECT_EQ(back.dst, ip("10.8.0.5"));
  EXPECT_EQ(back.dport, 40000);
  EXPECT_EQ(std::memcmp(r.out.data(), kClientMac, 6), 0);

  Tcp4 data;
  data.flags = kAck;
  data.payload = std::string(999, 'x') + "odd";  // odd length: the checksum's padding byte
  expectChecksumsValid(frame(data));             // the input itself is sound
  r = run(data);
  ASSERT_EQ(r.action, XDP_REDIRECT);
  expectChecksumsValid(r.out);
  EXPECT_EQ(parse(r.out).payload, data.payload);
  EXPECT_EQ(parse(r.out).sport, fwd.sport) << "same SNAT port for the whole flow";

  r = run(replyTo(fwd, kAck, "pong!"), "b0");
  ASSERT_EQ(r.action, XDP_REDIRECT);
  expectChecksumsValid(r.out);
  EXPECT_EQ(parse(r.out).payload, "pong!");
  EXPECT_EQ(counter(SLUICE_L4_FORWARD), 2u);
  EXPECT_EQ(counter(SLUICE_L4_REVERSE), 2u);
  auto flows = listL4Flows(m_.flows);
  ASSERT_TRUE(flows.ok() && flows->size() == 1);
  EXPECT_EQ((*flows)[0].value.packets_in, 2u);
  EXPECT_EQ((*flows)[0].value.packets_out, 2u);
}

TEST_F(XdpL4Test, WhatIsNotOursPasses) {
  Tcp4 ack;
  ack.flags = kAck;  // no flow, not a SYN: the relay's or the kernel's
  EXPECT_EQ(run(ack).action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_NO_FLOW), 1u);
  Tcp4 ssh;
  ssh.dport = 22;
  EXPECT_EQ(run(ssh).action, XDP_PASS);
  Tcp4 stray;  // to a SNAT port, but no such flow
  stray.src = ip("10.9.0.10");
  stray.sport = kBackendPort;
  stray.dst = ip("10.9.0.1");
  stray.dport = kSnatLo;
  stray.flags = kAck;
  EXPECT_EQ(run(stray, "b0").action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_NOT_OURS), 2u);
  EXPECT_EQ(counter(SLUICE_L4_FORWARD), 0u);
}

TEST_F(XdpL4Test, TtlOneIsLeftToTheKernel) {
  Tcp4 syn;
  syn.ttl = 1;
  EXPECT_EQ(run(syn).action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_NO_FIB), 1u);
  syn.ttl = 2;
  const Verdict r = run(syn);
  ASSERT_EQ(r.action, XDP_REDIRECT);
  EXPECT_EQ(parse(r.out).ttl, 1);
}

TEST_F(XdpL4Test, DisabledPassesEverything) {
  auto c = readL4Config(m_.config);
  ASSERT_TRUE(c.ok());
  c->flags = 0;
  ASSERT_TRUE(writeL4Config(m_.config, *c).ok());
  EXPECT_EQ(run(Tcp4{}).action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_DISABLED), 1u);
}

TEST_F(XdpL4Test, NoBackendNoFibNoSnatAddressFallBack) {
  setBackends({});
  EXPECT_EQ(run(Tcp4{}).action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_NO_BACKEND), 1u);
  setBackends({"10.7.0.1"});  // no route to it
  EXPECT_EQ(run(Tcp4{}).action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_NO_FIB), 1u);
  setBackends({"10.9.0.10"});
  ASSERT_TRUE(reconcileSnat(m_.snat, {}).ok());
  EXPECT_EQ(run(Tcp4{}).action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_NO_SNAT_ADDR), 1u);
  auto flows = listL4Flows(m_.flows);
  ASSERT_TRUE(flows.ok());
  EXPECT_TRUE(flows->empty()) << "a fallen-back SYN leaves no flow behind";
}

TEST_F(XdpL4Test, FlowKeepsItsBackendWhenTheTableChanges) {
  setBackends({"10.9.0.10", "10.9.0.11", "10.9.0.12"});
  std::map<std::uint32_t, int> first;
  std::map<std::uint16_t, std::uint32_t> backend_of;
  for (std::uint16_t port = 30000; port < 30300; ++port) {
    const Parsed p = open(port);
    ++first[p.dst];
    backend_of[port] = p.dst;
  }
  // Maglev spreads new flows over all three, none starved (expected 100 each).
  ASSERT_EQ(first.size(), 3u);
  for (const auto& [addr, n] : first) {
    EXPECT_GT(n, 60) << ipv4Text(addr);
    EXPECT_LT(n, 140) << ipv4Text(addr);
  }
  // Only .12 is left in the table; .10 and .11 keep their flows (drain).
  setBackends({"10.9.0.12"}, 2);
  sluice_l4_backend draining{};
  for (std::uint32_t id : {0u, 1u}) {
    draining.addr = ip(id == 0 ? "10.9.0.10" : "10.9.0.11");
    draining.port = ::htons(kBackendPort);
    draining.state = SLUICE_L4_BACKEND_DRAINING;
    ASSERT_TRUE(writeL4Backend(m_.backends, id, draining).ok());
  }
  for (std::uint16_t port = 30000; port < 30300; port += 7) {
    Tcp4 data;
    data.sport = port;
    data.flags = kAck;
    const Verdict r = run(data);
    ASSERT_EQ(r.action, XDP_REDIRECT);
    EXPECT_EQ(parse(r.out).dst, backend_of[port]) << "flow from port " << port;
  }
  // New flows all go to the one backend left.
  for (std::uint16_t port = 31000; port < 31020; ++port) {
    EXPECT_EQ(open(port).dst, ip("10.9.0.12"));
  }
}

TEST_F(XdpL4Test, ResetPolicyEndsFlowsOfRemovedBackends) {
  const Parsed fwd = open();
  auto c = readL4Config(m_.config);
  ASSERT_TRUE(c.ok());
  c->flags |= SLUICE_L4_CFG_F_RESET_REMOVED;
  ASSERT_TRUE(writeL4Config(m_.config, *c).ok());
  Tcp4 data;
  data.flags = kAck;
  EXPECT_EQ(run(data).action, XDP_REDIRECT) << "backend still there";
  ASSERT_TRUE(writeL4Backend(m_.backends, 0, sluice_l4_backend{}).ok());
  EXPECT_EQ(run(data).action, XDP_PASS);  // the kernel answers with an RST
  EXPECT_EQ(counter(SLUICE_L4_RESET_REMOVED), 1u);
  EXPECT_EQ(run(replyTo(fwd, kAck), "b0").action, XDP_PASS) << "reverse entry gone too";
}

TEST_F(XdpL4Test, RstClosesAndANewSynStartsOver) {
  auto c = readL4Config(m_.config);
  ASSERT_TRUE(c.ok());
  c->closing_timeout_ns = 0;
  ASSERT_TRUE(writeL4Config(m_.config, *c).ok());
  const Parsed fwd = open();
  Verdict r = run(replyTo(fwd, kRst | kAck), "b0");
  ASSERT_EQ(r.action, XDP_REDIRECT) << "the RST itself reaches the client";
  EXPECT_EQ(parse(r.out).flags & kRst, kRst);
  Tcp4 late;
  late.flags = kAck;
  EXPECT_EQ(run(late).action, XDP_PASS) << "closed flow expired";
  EXPECT_EQ(counter(SLUICE_L4_IDLE), 1u);
  open();  // same tuple again: a new flow
  EXPECT_EQ(counter(SLUICE_L4_NEW_FLOW), 2u);
}

// The reverse path on another CPU can stamp last_ns after this CPU took its timestamp; the flow
// must not look idle (an unsigned difference wrapped once and reset bulk transfers).
TEST_F(XdpL4Test, LastSeenAheadOfThisCpusClockIsNotIdle) {
  open();
  auto flows = listL4Flows(m_.flows);
  ASSERT_TRUE(flows.ok() && flows->size() == 1);
  auto f = (*flows)[0];
  f.value.last_ns += 1'000'000'000ULL;  // one second in the future
  ASSERT_EQ(::bpf_map_update_elem(m_.flows, &f.key, &f.value, BPF_EXIST), 0);
  Tcp4 data;
  data.flags = kAck;
  EXPECT_EQ(run(data).action, XDP_REDIRECT);
  EXPECT_EQ(counter(SLUICE_L4_IDLE), 0u);
}

TEST_F(XdpL4Test, FinBothWaysThenClosingTimeout) {
  auto c = readL4Config(m_.config);
  ASSERT_TRUE(c.ok());
  c->closing_timeout_ns = 0;
  ASSERT_TRUE(writeL4Config(m_.config, *c).ok());
  const Parsed fwd = open();
  Tcp4 fin;
  fin.flags = kFin | kAck;
  EXPECT_EQ(run(fin).action, XDP_REDIRECT);
  Tcp4 ack;
  ack.flags = kAck;
  EXPECT_EQ(run(ack).action, XDP_REDIRECT) << "half closed: still alive";
  EXPECT_EQ(run(replyTo(fwd, kFin | kAck), "b0").action, XDP_REDIRECT);
  EXPECT_EQ(run(ack).action, XDP_PASS) << "both FINs and the closing timeout (0) passed";
}

// ICMP fragmentation-needed from the backend side about a packet we forwarded: translated to
// the client, quoting the client's own packet.
TEST_F(XdpL4Test, IcmpFragNeededIsTranslatedToTheClient) {
  Tcp4 syn;
  const Verdict fwd_run = run(syn);
  ASSERT_EQ(fwd_run.action, XDP_REDIRECT);
  const std::vector<std::uint8_t>& fwd = fwd_run.out;
  // ICMP from a router 10.9.0.11 to the node's SNAT address: MTU 1400, quoting 20 + 8 bytes.
  std::uint32_t snat = 0;
  std::memcpy(&snat, fwd.data() + 14 + 12, 4);
  const std::vector<std::uint8_t> f = fragNeeded(ip("10.9.0.11"), snat, fwd.data() + 14, 1400);
  const Verdict r = run(f, "b0");
  ASSERT_EQ(r.action, XDP_REDIRECT);
  expectChecksumsValid(r.out);
  const std::uint8_t* o = r.out.data() + 14;
  std::uint32_t src = 0, dst = 0, in_src = 0, in_dst = 0;
  std::memcpy(&src, o + 12, 4);
  std::memcpy(&dst, o + 16, 4);
  EXPECT_EQ(src, ip("10.8.0.1"));
  EXPECT_EQ(dst, ip("10.8.0.5"));
  const std::uint8_t* inner = o + 28;
  EXPECT_EQ(inetChecksum(inner, 20), 0) << "quoted IPv4 header checksum";
  std::memcpy(&in_src, inner + 12, 4);
  std::memcpy(&in_dst, inner + 16, 4);
  EXPECT_EQ(in_src, ip("10.8.0.5"));
  EXPECT_EQ(in_dst, ip("10.8.0.1"));
  EXPECT_EQ(get16(inner + 20), 40000);
  EXPECT_EQ(get16(inner + 22), kListenPort);
  EXPECT_EQ(get16(o + 20 + 6), 1400) << "MTU passed through";
  EXPECT_EQ(counter(SLUICE_L4_ICMP_TRANSLATED), 1u);
}

// ICMP fragmentation-needed from the client side about a reply we sent it: translated to the
// backend, quoting the backend's own packet (backend -> node:SNAT port).
TEST_F(XdpL4Test, IcmpFragNeededFromTheClientIsTranslatedToTheBackend) {
  const Parsed fwd = open();
  const Verdict reply = run(replyTo(fwd, kSyn | kAck), "b0");
  ASSERT_EQ(reply.action, XDP_REDIRECT);
  // The client (10.8.0.5) to the listener address it used, quoting the rewritten reply.
  std::uint32_t client = 0, listener = 0;
  std::memcpy(&client, reply.out.data() + 14 + 16, 4);
  std::memcpy(&listener, reply.out.data() + 14 + 12, 4);
  const std::vector<std::uint8_t> f = fragNeeded(client, listener, reply.out.data() + 14, 1280);
  const Verdict r = run(f, "c0");
  ASSERT_EQ(r.action, XDP_REDIRECT) << "out of b0";
  expectChecksumsValid(r.out);
  EXPECT_EQ(std::memcmp(r.out.data(), kBackendMac, 6), 0) << "to the backend's MAC";
  const std::uint8_t* o = r.out.data() + 14;
  std::uint32_t src = 0, dst = 0, in_src = 0, in_dst = 0;
  std::memcpy(&src, o + 12, 4);
  std::memcpy(&dst, o + 16, 4);
  EXPECT_EQ(src, fwd.src) << "from the node's SNAT address";
  EXPECT_EQ(dst, fwd.dst) << "to the backend";
  const std::uint8_t* inner = o + 28;
  EXPECT_EQ(inetChecksum(inner, 20), 0) << "quoted IPv4 header checksum";
  std::memcpy(&in_src, inner + 12, 4);
  std::memcpy(&in_dst, inner + 16, 4);
  EXPECT_EQ(in_src, fwd.dst) << "the backend's own packet";
  EXPECT_EQ(in_dst, fwd.src);
  EXPECT_EQ(get16(inner + 20), fwd.dport);
  EXPECT_EQ(get16(inner + 22), fwd.sport) << "the SNAT port";
  EXPECT_EQ(get16(o + 20 + 6), 1280) << "MTU passed through";
  EXPECT_EQ(counter(SLUICE_L4_ICMP_TO_BACKEND), 1u);
  EXPECT_EQ(counter(SLUICE_L4_ICMP_TRANSLATED), 0u);
}

// An ICMP error quoting a tuple that is no flow of ours is the kernel's.
TEST_F(XdpL4Test, IcmpAboutAnUnknownFlowPasses) {
  open();
  const std::uint32_t a = ip("10.8.0.5"), b = ip("10.8.0.1");
  std::uint8_t quoted[28] = {};
  quoted[0] = 0x45;
  quoted[9] = IPPROTO_TCP;
  std::memcpy(quoted + 12, &b, 4);
  std::memcpy(quoted + 16, &a, 4);
  put16(quoted + 20, kListenPort);
  put16(quoted + 22, 40001);  // the flow is from port 40000
  const std::vector<std::uint8_t> f = fragNeeded(a, b, quoted, 1280);
  EXPECT_EQ(run(f, "c0").action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_ICMP_TO_BACKEND), 0u);
}

TEST_F(XdpL4Test, Ipv6ToAFastPathPortFallsBack) {
  testing::Frame f6;
  f6.src = "2001:db8::1";
  f6.dst = "2001:db8::2";
  f6.dport = kListenPort;
  EXPECT_EQ(run(testing::buildFrame(f6)).action, XDP_PASS);
  EXPECT_EQ(counter(SLUICE_L4_IPV6), 1u);
}

// The front door chains into the fast path: what it passes is NATed, what it drops stays
// dropped, and an empty slot passes.
class XdpL4ChainTest : public XdpL4Test {
protected:
  void SetUp() override {
    XdpL4Test::SetUp();
    if (IsSkipped()) {
      return;
    }
    Frontdoor::Options o;
    o.pin_root = "";
    auto door = Frontdoor::open(o);
    ASSERT_TRUE(door.ok()) << door.error().message();
    door_ = std::move(*door);
    std::vector<ScopeEntry> scope = {
        {scopeKey(false, nullptr, kListenPort), {SLUICE_XDP_KIND_TCP, 0}}};
    ASSERT_TRUE(reconcileScope(door_->scopeFd(), scope).ok());
    sluice_xdp_config c{};
    c.syn_burst = 1;
    c.pkt_burst = 1;
    ASSERT_TRUE(writeXdpConfig(door_->configFd(), c).ok());
  }
  int prog() override { return door_->programFd(); }
  std::unique_ptr<Frontdoor> door_;
};

TEST_F(XdpL4ChainTest, FrontDoorTailCallsTheFastPath) {
  EXPECT_EQ(run(Tcp4{}).action, XDP_PASS) << "slot empty: the front door alone";
  ASSERT_TRUE(l4_->chain(door_->chainFd()).ok());
  const Verdict r = run(Tcp4{});
  EXPECT_EQ(r.action, XDP_REDIRECT);
  expectChecksumsValid(r.out);
  EXPECT_EQ(parse(r.out).dst, ip("10.9.0.10"));
  ASSERT_TRUE(
      addDeny(door_->denyMaps(), *net::parseCidr("10.8.0.0/24"), SLUICE_XDP_ORIGIN_CLI).ok());
  Tcp4 other;
  other.sport = 40001;
  EXPECT_EQ(run(other).action, XDP_DROP) << "the front door's verdict comes first";
  l4_->unchain();
  ASSERT_TRUE(deleteDeny(door_->denyMaps(), *net::parseCidr("10.8.0.0/24")).ok());
  EXPECT_EQ(run(other).action, XDP_PASS);
}

}  // namespace
}  // namespace sluice::bpf
