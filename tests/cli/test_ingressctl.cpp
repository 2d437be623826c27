// ingressctl, the binary, against a real splice datapath on the running kernel.
//
// Each test pins its own SpliceDatapath under a private bpffs directory, splices a real loopback
// pair the way tests/bpf does, runs ingressctl as a child process with --pin-dir pointing there,
// and checks what it prints and how it exits:
//
//   client A  <──tcp──>  PA [agent]  PB  <──tcp──>  server B
//
// --admin always points somewhere explicit (a closed port, or a fake admin server in the test),
// so a real agent on this host never changes the results. Kernels before 5.19 cannot list the
// programs attached to a sockmap: there the status tests expect the pinned verdict marked
// "pinned by the agent (attachment not queryable)" and the warning that says why.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "../bpf/loopback_pair.hpp"
#include "admin_client.hpp"
#include "bpf/abi.hpp"
#include "bpf/frontdoor.hpp"
#include "bpf/splice_datapath.hpp"
#include "bpf/xdp_maps.hpp"
#include "ctl_run.hpp"
#include "render.hpp"
#include "status.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;
using bpf::SpliceDatapath;

using namespace sluice::testing;
// ---- sockets ----------------------------------------------------------------------------------

std::string endpointText(int fd, bool peer) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  const int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                      : ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) {
    return "?";
  }
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
  return std::string(text) + ":" + std::to_string(ntohs(addr.sin_port));
}

// Sends n bytes on `from` and reads them all at `to` (through the splice).
bool push(int from, int to, std::size_t n) {
  const std::string data(n, 'x');
  std::size_t off = 0;
  while (off < n) {
    const ssize_t sent = ::send(from, data.data() + off, n - off, MSG_NOSIGNAL);
    if (sent <= 0) {
      return false;
    }
    off += static_cast<std::size_t>(sent);
  }
  std::vector<char> buf(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(to, buf.data() + got, n - got, 0);
    if (r <= 0) {
      return false;
    }
    got += static_cast<std::size_t>(r);
  }
  return true;
}

// A loopback port nothing listens on (bound, then closed), for a --admin that must not answer.
std::string closedPort() {
  std::uint16_t port = 0;
  Fd fd = listenLoopback(&port);
  return "127.0.0.1:" + std::to_string(port);
}

std::uint32_t progId(int fd) {
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  return ::bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

// Whether this kernel lists the programs attached to a sockmap (BPF_PROG_QUERY, 5.19+).
bool kernelListsSockmapPrograms(int sockhash_fd) {
  std::uint32_t ids[4] = {};
  std::uint32_t count = 4;
  if (::bpf_prog_query(sockhash_fd, BPF_SK_SKB_STREAM_VERDICT, 0, nullptr, ids, &count) == 0) {
    return true;
  }
  EXPECT_EQ(errno, EINVAL) << "bpf_prog_query: " << std::strerror(errno);
  return false;
}

constexpr std::string_view kCannotListWarning =
    "cannot list programs attached to " SLUICE_MAP_SOCKS
    ": this kernel cannot list sockmap programs (Linux < 5.19)";

// ---- fixture ---------------------------------------------------------------------------------

class IngressctlTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (const std::string why = bpfUnavailableReason(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    pin_root_ = uniquePinRoot("sluice-ctl-test");
    admin_ = closedPort();
  }

  void TearDown() override {
    datapath_.reset();
    if (pin_root_.empty()) {
      return;
    }
    EXPECT_TRUE(SpliceDatapath::unpinMaps(pin_root_).ok());
    struct stat st {};
    EXPECT_NE(::stat(pin_root_.c_str(), &st), 0) << pin_root_ << " left behind";
  }

  void openDatapath() {
    bpf::Options options;
    options.pin_root = pin_root_;
    auto opened = SpliceDatapath::open(options);
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    datapath_ = std::move(*opened);
  }

  // ingressctl --pin-dir <ours> --admin <closed port> args...
  CtlRun ctl(std::vector<std::string> args) {
    std::vector<std::string> all{"--pin-dir", pin_root_, "--admin", admin_};
    all.insert(all.end(), args.begin(), args.end());
    return runCtl(all);
  }

  std::string pin_root_;
  std::string admin_;
  std::unique_ptr<SpliceDatapath> datapath_;
};

// ---- status ----------------------------------------------------------------------------------

TEST_F(IngressctlTest, StatusJsonListsTheMapsTheirFillAndTheAttachedVerdict) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  Topology t = makeTopology();
  ASSERT_TRUE(complete(t));
  ASSERT_OK(datapath_->addPair(t.pa.get(), t.pb.get()));
  ASSERT_TRUE(push(t.a.get(), t.b.get(), 100));

  const CtlRun run = ctl({"status", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_object()) << run;
  const json::object& s = v.as_object();
  EXPECT_EQ(s.at("pin_dir").as_string(), pin_root_);
  EXPECT_EQ(s.at("agent_admin").as_string(), admin_);
  EXPECT_EQ(s.at("splice_strategy").as_string(), "unknown (agent admin not reachable)");

  const json::array& maps = s.at("maps").as_array();
  ASSERT_EQ(maps.size(), 5U) << run;
  const struct {
    const char* name;
    const char* type;
    std::uint64_t max_entries;
    std::uint64_t entries;
  } want[] = {{SLUICE_MAP_SOCKS, "sockhash", SLUICE_MAX_SOCKETS, 2},
              {SLUICE_MAP_TARGETS, "sockhash", SLUICE_MAX_SOCKETS, 2},
              {SLUICE_MAP_PEERS, "hash", SLUICE_MAX_SOCKETS, 2},
              {SLUICE_MAP_FLOW_STATS, "hash", SLUICE_MAX_SOCKETS, 2},
              {SLUICE_MAP_VERDICTS, "percpu_array", SLUICE_REASON_SLOTS, SLUICE_REASON_SLOTS}};
  for (std::size_t i = 0; i < std::size(want); ++i) {
    const json::object& m = maps[i].as_object();
    EXPECT_EQ(m.at("name").as_string(), want[i].name);
    EXPECT_EQ(m.at("type").as_string(), want[i].type) << want[i].name;
    EXPECT_EQ(m.at("max_entries").to_number<std::uint64_t>(), want[i].max_entries) << want[i].name;
    EXPECT_EQ(m.at("entries").to_number<std::uint64_t>(), want[i].entries) << want[i].name;
    EXPECT_GT(m.at("id").to_number<std::uint64_t>(), 0U);
  }

  const json::array& programs = s.at("programs").as_array();
  ASSERT_EQ(programs.size(), 1U) << run;
  const json::object& p = programs[0].as_object();
  EXPECT_EQ(p.at("id").to_number<std::uint32_t>(), progId(datapath_->verdictProgFd()));
  EXPECT_EQ(p.at("name").as_string(), "sluice_splice_v");  // kernel names stop at 15 characters
  EXPECT_EQ(p.at("tag").as_string().size(), 16U);
  EXPECT_EQ(p.at("type").as_string(), "sk_skb");
  EXPECT_EQ(p.at("attach_type").as_string(), "sk_skb_stream_verdict");
  EXPECT_EQ(p.at("attached_to").as_string(), SLUICE_MAP_SOCKS);
  // Where the kernel cannot list, the agent's pin still names the verdict, marked as such.
  const bool listed = kernelListsSockmapPrograms(datapath_->socksMapFd());
  EXPECT_EQ(p.at("attached").as_string(), listed ? "yes" : kPinnedNotQueryable) << run;
  if (listed) {
    EXPECT_TRUE(s.at("programs_unlisted").is_null()) << run;
  } else {
    EXPECT_EQ(s.at("programs_unlisted").as_string(),
              "this kernel cannot list sockmap programs (Linux < 5.19)");
  }

  const json::array& verdicts = s.at("verdicts").as_array();
  ASSERT_EQ(verdicts.size(), static_cast<std::size_t>(SLUICE_REASON_COUNT));
  for (std::size_t i = 0; i < verdicts.size(); ++i) {
    EXPECT_EQ(verdicts[i].at("reason").as_string(), bpf::kReasonLabels[i]);
  }
  EXPECT_GE(verdicts[SLUICE_REASON_REDIRECT].at("count").to_number<std::uint64_t>(), 1U);

  bool program = false;
  for (const auto& f : s.at("kernel").as_array()) {
    program = program || (f.at("feature").as_string() == "splice_program" &&
                          f.at("value").as_string() == "yes");
  }
  EXPECT_TRUE(program) << run;
  if (listed) {
    EXPECT_TRUE(s.at("warnings").as_array().empty()) << run;
  } else {
    ASSERT_EQ(s.at("warnings").as_array().size(), 1U) << run;
    EXPECT_EQ(s.at("warnings").as_array()[0].as_string(), kCannotListWarning);
  }
  EXPECT_EQ(run.err, "");
}

TEST_F(IngressctlTest, StatusTableShowsTheSameFieldsAsColumns) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  Topology t = makeTopology();
  ASSERT_TRUE(complete(t));
  ASSERT_OK(datapath_->addPair(t.pa.get(), t.pb.get()));

  const CtlRun run = ctl({"status"});
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(rowStartingWith(run.out, "PIN-DIR"),
            (std::vector<std::string>{"PIN-DIR", "AGENT-ADMIN", "SPLICE-STRATEGY"}))
      << run;
  EXPECT_EQ(rowStartingWith(run.out, "NAME"),
            (std::vector<std::string>{"NAME", "TYPE", "ID", "KEY-SIZE", "VALUE-SIZE", "MAX-ENTRIES",
                                      "ENTRIES"}))
      << run;
  const auto socks = rowStartingWith(run.out, SLUICE_MAP_SOCKS);
  ASSERT_EQ(socks.size(), 7U) << run;
  EXPECT_EQ(socks[1], "sockhash");
  EXPECT_EQ(socks[5], std::to_string(SLUICE_MAX_SOCKETS));
  EXPECT_EQ(socks[6], "2");
  EXPECT_EQ(rowStartingWith(run.out, SLUICE_MAP_PEERS).back(), "2") << run;
  EXPECT_EQ(rowStartingWith(run.out, SLUICE_MAP_FLOW_STATS).back(), "2") << run;
  EXPECT_EQ(rowStartingWith(run.out, SLUICE_MAP_VERDICTS).back(),
            std::to_string(SLUICE_REASON_SLOTS))
      << run;

  EXPECT_EQ(rowStartingWith(run.out, SLUICE_MAP_TARGETS).back(), "2") << run;
  EXPECT_EQ(rowStartingWith(run.out, "ID"),
            (std::vector<std::string>{"ID", "NAME", "TAG", "TYPE", "ATTACH-TYPE", "ATTACHED-TO",
                                      "ATTACHED"}))
      << run;
  const auto program = rowStartingWith(run.out, std::to_string(progId(datapath_->verdictProgFd())));
  ASSERT_GE(program.size(), 7U) << run;
  EXPECT_EQ(program[1], "sluice_splice_v");
  EXPECT_EQ(program[4], "sk_skb_stream_verdict");
  EXPECT_EQ(program[5], SLUICE_MAP_SOCKS);
  std::string attached;
  for (std::size_t i = 6; i < program.size(); ++i) {
    attached += (i > 6 ? " " : "") + program[i];
  }
  EXPECT_EQ(attached,
            kernelListsSockmapPrograms(datapath_->socksMapFd()) ? "yes" : kPinnedNotQueryable)
      << run;
  EXPECT_EQ(rowStartingWith(run.out, "redirect").size(), 2U) << run;
  EXPECT_NE(run.out.find("unknown (agent admin not reachable)"), std::string::npos) << run;
}

// A one-shot HTTP server answering GET /debug/state like the agent's admin listener.
class FakeAdmin {
public:
  explicit FakeAdmin(std::string body) : body_(std::move(body)) {
    listener_ = listenLoopback(&port_);
    thread_ = std::jthread([this] { serveOne(); });
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string requestLine() {
    thread_.join();
    return request_line_;
  }

private:
  void serveOne() {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 20'000) != 1) {
      return;
    }
    Fd conn = acceptOne(listener_.get());
    std::string request;
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(conn.get(), buf, sizeof(buf), 0);
      if (n <= 0) {
        return;
      }
      request.append(buf, static_cast<std::size_t>(n));
    }
    request_line_ = request.substr(0, request.find("\r\n"));
    const std::string reply =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body_.size()) + "\r\n\r\n" + body_;
    ::send(conn.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
  }

  std::string body_;
  std::uint16_t port_ = 0;
  Fd listener_;
  std::string request_line_;
  std::jthread thread_;
};

TEST_F(IngressctlTest, StatusTakesTheSpliceStrategyFromTheAgentAdmin) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  FakeAdmin admin(R"({"generation":3,"splice_strategy":"sockmap","ready":true})");
  const CtlRun run =
      runCtl({"status", "--pin-dir", pin_root_, "--admin", admin.address(), "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(admin.requestLine(), "GET /debug/state HTTP/1.1");
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_object()) << run;
  EXPECT_EQ(v.at("splice_strategy").as_string(), "sockmap");
  EXPECT_EQ(v.at("agent_admin").as_string(), admin.address());
}

// Flows relayed without sockmap live only in the agent; flows lists them from /debug/flows, and
// skips the agent's sockmap rows, which the maps already gave with the kernel's counters.
TEST_F(IngressctlTest, FlowsAddTheAgentsPipeAndCopyFlows) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  FakeAdmin admin(R"j([{"flow_id":9,"client":"10.0.0.1:5000","backend":"10.1.0.1:80",)j"
                  R"j("strategy":"adaptive(up:pipe,down:copy)","bytes_in":123,"bytes_out":45,)j"
                  R"j("age_seconds":7},{"flow_id":10,"client":"a","backend":"b",)j"
                  R"j("strategy":"sockmap","bytes_in":1,"bytes_out":1,"age_seconds":1}])j");
  const CtlRun run =
      runCtl({"flows", "--pin-dir", pin_root_, "--admin", admin.address(), "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(admin.requestLine(), "GET /debug/flows HTTP/1.1");
  EXPECT_EQ(run.err, "");
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_array()) << run;
  ASSERT_EQ(v.as_array().size(), 1U) << run;
  const auto& f = v.as_array()[0].as_object();
  EXPECT_EQ(f.at("flow_id").to_number<std::uint64_t>(), 9U);
  EXPECT_EQ(f.at("client").as_string(), "10.0.0.1:5000");
  EXPECT_EQ(f.at("backend").as_string(), "10.1.0.1:80");
  EXPECT_EQ(f.at("strategy").as_string(), "adaptive(up:pipe,down:copy)");
  EXPECT_EQ(f.at("bytes_in").to_number<std::uint64_t>(), 123U);
  EXPECT_EQ(f.at("bytes_out").to_number<std::uint64_t>(), 45U);
  EXPECT_EQ(f.at("age").to_number<std::uint64_t>(), 7U);
}

TEST_F(IngressctlTest, StatusSaysWhenTheAgentDoesNotReportAStrategy) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  FakeAdmin admin(R"({"generation":3})");
  const CtlRun run =
      runCtl({"status", "--pin-dir", pin_root_, "--admin", admin.address(), "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_object()) << run;
  EXPECT_EQ(v.at("splice_strategy").as_string(), "unknown (agent does not report splice_strategy)");
}

// What DaemonSet capabilities give (finding 2): no CAP_SYS_ADMIN, so no program can be opened by
// id; the verdict is named from its pin, with nothing to warn about.
TEST_F(IngressctlTest, StatusNamesTheVerdictWithoutCapSysAdmin) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  const CtlRun run = runCtl({"status", "--pin-dir", pin_root_, "--admin", admin_, "-o", "json"},
                            As::kNoCapSysAdmin);
  if (run.exit_code == 126) {
    GTEST_SKIP() << "cannot drop CAP_SYS_ADMIN from the bounding set (no CAP_SETPCAP)";
  }
  ASSERT_EQ(run.exit_code, 0) << run;
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_object()) << run;
  const json::array& programs = v.at("programs").as_array();
  ASSERT_EQ(programs.size(), 1U) << run;
  EXPECT_EQ(programs[0].at("id").to_number<std::uint32_t>(), progId(datapath_->verdictProgFd()));
  EXPECT_EQ(programs[0].at("name").as_string(), "sluice_splice_v") << run;
  EXPECT_EQ(programs[0].at("tag").as_string().size(), 16U) << run;
  EXPECT_EQ(programs[0].at("type").as_string(), "sk_skb") << run;
  for (const auto& w : v.at("warnings").as_array()) {
    EXPECT_EQ(w.as_string(), kCannotListWarning) << run;
  }
}

TEST_F(IngressctlTest, StatusShowsNoProgramOnceTheAgentDetached) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  const bool listed = kernelListsSockmapPrograms(datapath_->socksMapFd());
  datapath_.reset();  // the destructor detaches the verdict and unpins it; the maps stay
  struct stat st {};
  EXPECT_NE(::stat(bpf::pinPath(pin_root_, bpf::kVerdictPin).c_str(), &st), 0)
      << "the verdict's pin outlived the datapath";
  const CtlRun run = ctl({"status", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_object()) << run;
  EXPECT_TRUE(v.at("programs").as_array().empty()) << run;
  const CtlRun table = ctl({"status"});
  // Never "none attached" where the kernel cannot tell.
  EXPECT_NE(table.out.find(listed ? "none attached to " SLUICE_MAP_SOCKS
                                  : "unknown (this kernel cannot list sockmap programs (Linux < "
                                    "5.19))"),
            std::string::npos)
      << table;
}

// ---- flows -----------------------------------------------------------------------------------

TEST_F(IngressctlTest, FlowsShowsOneFlowWithItsAddressesAndGrowingCounters) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  Topology t = makeTopology();
  ASSERT_TRUE(complete(t));
  ASSERT_OK(datapath_->addPair(t.pa.get(), t.pb.get()));
  const std::string client = endpointText(t.a.get(), /*peer=*/false);
  const std::string backend = endpointText(t.pb.get(), /*peer=*/true);
  const std::uint64_t flow_id = *SpliceDatapath::socketCookie(t.pa.get());

  ASSERT_TRUE(push(t.a.get(), t.b.get(), 1000));
  const CtlRun first = ctl({"flows", "-o", "json"});
  ASSERT_EQ(first.exit_code, 0) << first;
  json::value v = parseJson(first.out);
  ASSERT_TRUE(v.is_array()) << first;
  ASSERT_EQ(v.as_array().size(), 1U) << first;
  const json::object f1 = v.as_array()[0].as_object();
  EXPECT_EQ(f1.at("flow_id").to_number<std::uint64_t>(), flow_id);
  EXPECT_EQ(f1.at("client").as_string(), client);
  EXPECT_EQ(f1.at("backend").as_string(), backend);
  EXPECT_EQ(f1.at("strategy").as_string(), "sockmap");
  EXPECT_EQ(f1.at("bytes_in").to_number<std::uint64_t>(), 1000U);
  EXPECT_EQ(f1.at("bytes_out").to_number<std::uint64_t>(), 0U);
  EXPECT_GE(f1.at("pkts_in").to_number<std::uint64_t>(), 1U);
  EXPECT_EQ(f1.at("pkts_out").to_number<std::uint64_t>(), 0U);
  EXPECT_LT(f1.at("age").to_number<std::uint64_t>(), 60U);
  // No agent answers on --admin: its pipe/copy flows cannot be listed, and the CLI says so.
  EXPECT_EQ(first.err, "ingressctl: warning: agent admin " + admin_ +
                           " not reachable; only sockmap flows (from the pinned maps) are shown\n");

  // More traffic both ways between the two invocations.
  ASSERT_TRUE(push(t.a.get(), t.b.get(), 64 * 1024));
  ASSERT_TRUE(push(t.b.get(), t.a.get(), 5000));
  const CtlRun second = ctl({"flows", "-o", "json"});
  ASSERT_EQ(second.exit_code, 0) << second;
  v = parseJson(second.out);
  ASSERT_TRUE(v.is_array() && v.as_array().size() == 1U) << second;
  const json::object f2 = v.as_array()[0].as_object();
  EXPECT_EQ(f2.at("bytes_in").to_number<std::uint64_t>(), 1000U + 64 * 1024);
  EXPECT_EQ(f2.at("bytes_out").to_number<std::uint64_t>(), 5000U);
  EXPECT_GT(f2.at("pkts_in").to_number<std::uint64_t>(),
            f1.at("pkts_in").to_number<std::uint64_t>());
  EXPECT_GE(f2.at("pkts_out").to_number<std::uint64_t>(), 1U);

  // The table: the same fields, upper-cased, in the same order, one row.
  const CtlRun table = ctl({"flows"});
  ASSERT_EQ(table.exit_code, 0) << table;
  const auto rows = lines(table.out);
  ASSERT_EQ(rows.size(), 2U) << table;
  const auto header = words(rows[0]);
  ASSERT_EQ(header.size(), f2.size());
  std::size_t i = 0;
  for (const auto& [key, value] : f2) {
    EXPECT_EQ(header[i++], Records::header(key));
  }
  const auto row = words(rows[1]);
  ASSERT_EQ(row.size(), header.size()) << table;
  EXPECT_EQ(row[0], std::to_string(flow_id));
  EXPECT_EQ(row[1], client);
  EXPECT_EQ(row[2], backend);
  EXPECT_EQ(row[3], "sockmap");
  EXPECT_EQ(row[4], std::to_string(1000 + 64 * 1024));
  EXPECT_EQ(row[5], "5000");
  // Columns line up under their headers.
  EXPECT_EQ(rows[0].find("CLIENT"), rows[1].find(client)) << table;
  EXPECT_EQ(rows[0].find("BACKEND"), rows[1].find(backend)) << table;
}

TEST_F(IngressctlTest, FlowsListsEachOfSeveralPairsOnce) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  Topology t1 = makeTopology();
  Topology t2 = makeTopology();
  ASSERT_TRUE(complete(t1) && complete(t2));
  ASSERT_OK(datapath_->addPair(t1.pa.get(), t1.pb.get(), 11));
  ASSERT_OK(datapath_->addPair(t2.pa.get(), t2.pb.get(), 22));
  const CtlRun run = ctl({"flows", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_array() && v.as_array().size() == 2U) << run;
  EXPECT_EQ(v.as_array()[0].at("flow_id").to_number<int>(), 11);
  EXPECT_EQ(v.as_array()[1].at("flow_id").to_number<int>(), 22);
  EXPECT_EQ(v.as_array()[1].at("client").as_string(), endpointText(t2.a.get(), false));
}

TEST_F(IngressctlTest, FlowsIsEmptyAfterRemovePair) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  Topology t = makeTopology();
  ASSERT_TRUE(complete(t));
  ASSERT_OK(datapath_->addPair(t.pa.get(), t.pb.get()));
  ASSERT_TRUE(push(t.a.get(), t.b.get(), 10));
  ASSERT_OK(datapath_->removePair(t.pa.get()));

  const CtlRun run = ctl({"flows", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "[]\n");
  const CtlRun table = ctl({"flows"});
  ASSERT_EQ(table.exit_code, 0) << table;
  const auto rows = lines(table.out);
  ASSERT_EQ(rows.size(), 1U) << table;  // the header only
  EXPECT_EQ(words(rows[0])[0], "FLOW-ID");
}

// Entries whose sockets this namespace cannot see (another netns, or gone) are shown by cookie;
// a half whose other half is missing is still one flow, oriented by its direction flag.
TEST_F(IngressctlTest, FlowsShowUnresolvableSocketsByCookie) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  constexpr std::uint64_t kClient = 0xfffffff000000001ULL;
  constexpr std::uint64_t kBackend = 0xfffffff000000002ULL;
  constexpr std::uint64_t kOrphanBackend = 0xfffffff000000003ULL;
  constexpr std::uint64_t kGoneClient = 0xfffffff000000004ULL;
  const struct {
    std::uint64_t cookie;
    sluice_flow flow;
  } entries[] = {
      {kBackend, {kClient, 7, 0, SLUICE_FLOW_F_BACKEND, SLUICE_STRATEGY_PASS, {}, 0, 0}},
      {kClient, {kBackend, 7, 0, SLUICE_FLOW_F_CLIENT, SLUICE_STRATEGY_PASS, {}, 0, 0}},
      {kOrphanBackend,
       {kGoneClient, 8, 0, SLUICE_FLOW_F_BACKEND, SLUICE_STRATEGY_REDIRECT, {}, 0, 0}},
  };
  for (const auto& e : entries) {
    sluice_flow_key key{e.cookie};
    ASSERT_EQ(::bpf_map_update_elem(datapath_->peersMapFd(), &key, &e.flow, BPF_NOEXIST), 0);
  }

  const CtlRun run = ctl({"flows", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run;
  const json::value v = parseJson(run.out);
  ASSERT_TRUE(v.is_array() && v.as_array().size() == 2U) << run;
  const json::object& pair = v.as_array()[0].as_object();
  EXPECT_EQ(pair.at("flow_id").to_number<int>(), 7);
  EXPECT_EQ(pair.at("client").as_string(), "cookie:" + std::to_string(kClient));
  EXPECT_EQ(pair.at("backend").as_string(), "cookie:" + std::to_string(kBackend));
  EXPECT_EQ(pair.at("strategy").as_string(), "sockmap(pass)");
  EXPECT_TRUE(pair.at("age").is_null());  // created_ns 0: unknown
  const json::object& orphan = v.as_array()[1].as_object();
  EXPECT_EQ(orphan.at("client").as_string(), "cookie:" + std::to_string(kGoneClient));
  EXPECT_EQ(orphan.at("backend").as_string(), "cookie:" + std::to_string(kOrphanBackend));
  EXPECT_NE(run.err.find("not found in this network namespace"), std::string::npos) << run;

  const CtlRun table = ctl({"flows"});
  ASSERT_EQ(table.exit_code, 0) << table;
  const auto row = rowStartingWith(table.out, "7");
  ASSERT_EQ(row.size(), 9U) << table;
  EXPECT_EQ(row[8], "-");
}

// ---- errors ----------------------------------------------------------------------------------

TEST_F(IngressctlTest, NonexistentPinDirSaysNoMapsArePinned) {
  const std::string dir = "/sys/fs/bpf/sluice-ctl-missing-" + std::to_string(::getpid());
  for (const char* command : {"status", "flows"}) {
    const CtlRun run = runCtl({command, "--pin-dir", dir, "--admin", admin_});
    EXPECT_EQ(run.exit_code, 1) << run;
    EXPECT_EQ(run.out, "");
    EXPECT_EQ(run.err, "ingressctl: no Sluice maps pinned under " + dir +
                           ": is ingress-agent running with BPF enabled?\n");
  }
}

TEST_F(IngressctlTest, JsonModeErrorsAreOneJsonObjectOnStdout) {
  const std::string dir = "/sys/fs/bpf/sluice-ctl-missing-" + std::to_string(::getpid());
  for (const char* command : {"status", "flows"}) {
    const CtlRun run = runCtl({"-o", "json", command, "--pin-dir", dir});
    EXPECT_EQ(run.exit_code, 1) << run;
    EXPECT_EQ(run.err, "");
    const json::value v = parseJson(run.out);
    ASSERT_TRUE(v.is_object()) << run;
    EXPECT_EQ(v.as_object().size(), 1U);
    EXPECT_NE(std::string(v.at("error").as_string()).find("no Sluice maps pinned under " + dir),
              std::string::npos);
  }
}

TEST_F(IngressctlTest, EmptyBpffsDirSaysNoMapsArePinned) {
  ASSERT_EQ(::mkdir(pin_root_.c_str(), 0755), 0);
  const CtlRun run = ctl({"flows"});
  EXPECT_EQ(run.exit_code, 1) << run;
  EXPECT_NE(run.err.find("no Sluice maps pinned under " + pin_root_), std::string::npos) << run;
}

TEST_F(IngressctlTest, PinDirOffBpffsIsRefused) {
  const std::string dir = "/tmp/sluice-ctl-not-bpffs-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const CtlRun run = runCtl({"status", "--pin-dir", dir, "--admin", admin_});
  const CtlRun json_run = runCtl({"flows", "--pin-dir", dir, "-o", "json"});
  ::rmdir(dir.c_str());
  EXPECT_EQ(run.exit_code, 1) << run;
  EXPECT_NE(run.err.find(dir + " is not on bpffs"), std::string::npos) << run;
  EXPECT_EQ(json_run.exit_code, 1) << json_run;
  const json::value v = parseJson(json_run.out);
  ASSERT_TRUE(v.is_object()) << json_run;
  EXPECT_NE(std::string(v.at("error").as_string()).find("is not on bpffs"), std::string::npos);
}

TEST_F(IngressctlTest, WithoutPrivilegesItSaysWhatItNeeds) {
  ASSERT_NO_FATAL_FAILURE(openDatapath());
  const CtlRun run = runCtl({"flows", "--pin-dir", pin_root_}, As::kNobody);
  if (run.exit_code == 126 || run.exit_code == 127) {
    GTEST_SKIP() << "cannot run " INGRESSCTL_PATH " as nobody (exit " << run.exit_code << ")";
  }
  EXPECT_EQ(run.exit_code, 1) << run;
  EXPECT_NE(run.err.find("reading BPF maps needs CAP_BPF (or root)"), std::string::npos) << run;
}

TEST_F(IngressctlTest, UsageErrorsExitWithTwo) {
  const std::vector<std::vector<std::string>> bad = {
      {"frobnicate"},                          // unknown subcommand
      {},                                      // no subcommand
      {"status", "-o", "yaml"},                // unknown format
      {"flows", "--admin", "localhost"},       // not ADDR:PORT
      {"flows", "--admin", "10.0.0.1:99999"},  // port out of range
      {"flows", "--no-such-flag"},
  };
  for (const auto& args : bad) {
    const CtlRun run = runCtl(args);
    EXPECT_EQ(run.exit_code, 2) << run;
    EXPECT_EQ(run.out, "") << run;
    EXPECT_FALSE(run.err.empty()) << run;
  }
  const CtlRun json_run = runCtl({"-o", "json", "frobnicate"});
  EXPECT_EQ(json_run.exit_code, 2) << json_run;
  const json::value v = parseJson(json_run.out);
  ASSERT_TRUE(v.is_object()) << json_run;
  EXPECT_TRUE(v.as_object().contains("error"));
}

TEST_F(IngressctlTest, HelpExitsWithZero) {
  const CtlRun run = runCtl({"--help"});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_NE(run.out.find("status"), std::string::npos);
  EXPECT_NE(run.out.find("--pin-dir"), std::string::npos);
  const CtlRun sub = runCtl({"flows", "--help"});
  EXPECT_EQ(sub.exit_code, 0) << sub;
}

// ---- pure pieces (no kernel) -----------------------------------------------------------------

TEST(IngressctlRender, HeadersAreTheFieldNamesUpperCasedWithDashes) {
  EXPECT_EQ(Records::header("bytes_in"), "BYTES-IN");
  EXPECT_EQ(Records::header("flow_id"), "FLOW-ID");
  Records r({"name", "entries"});
  r.add({textCell("sluice_socks"), numberCell(2)});
  r.add({textCell("x"), numberCell(12345)});
  std::ostringstream out;
  r.printTable(out);
  EXPECT_EQ(out.str(),
            "NAME          ENTRIES\n"
            "sluice_socks  2\n"
            "x             12345\n");
  EXPECT_EQ(json::serialize(r.array()),
            R"([{"name":"sluice_socks","entries":2},{"name":"x","entries":12345}])");
}

TEST(IngressctlRender, AgesAreShort) {
  EXPECT_EQ(formatAge(0), "0s");
  EXPECT_EQ(formatAge(59), "59s");
  EXPECT_EQ(formatAge(65), "1m05s");
  EXPECT_EQ(formatAge(3 * 3600 + 5 * 60 + 9), "3h05m");
  EXPECT_EQ(formatAge(2 * 86400 + 3 * 3600), "2d03h");
}

TEST(IngressctlStatus, ProbeLineSplitsIntoFeatures) {
  const auto features = parseProbeLine(
      "kernel 6.18.44-fc, btf yes, bpffs no (/sys/fs/bpf is not bpffs), splice program no "
      "(the verifier refused sluice_splice_verdict: unknown func bpf_skc_to_tcp_sock#137 (this "
      "process lacks CAP_PERFMON: the flow budget reads the peer's tcp_sock through "
      "bpf_skc_to_tcp_sock)), sk_skb stream_verdict attach not tried");
  ASSERT_EQ(features.size(), 5U);
  EXPECT_EQ(features[0].feature, "kernel");
  EXPECT_EQ(features[0].value, "6.18.44-fc");
  EXPECT_EQ(features[1].feature, "btf");
  EXPECT_EQ(features[1].value, "yes");
  EXPECT_EQ(features[2].value, "no (/sys/fs/bpf is not bpffs)");
  EXPECT_EQ(features[3].feature, "splice_program");
  EXPECT_EQ(features[3].value,
            "no (the verifier refused sluice_splice_verdict: unknown func bpf_skc_to_tcp_sock#137 "
            "(this process lacks CAP_PERFMON: the flow budget reads the peer's tcp_sock through "
            "bpf_skc_to_tcp_sock))");
  EXPECT_EQ(features[4].feature, "sk_skb_stream_verdict_attach");
  EXPECT_EQ(features[4].value, "not tried");
}

TEST(IngressctlAdmin, EndpointsAreNumericAddrPort) {
  EXPECT_TRUE(parseAdminEndpoint("127.0.0.1:10254"));
  EXPECT_TRUE(parseAdminEndpoint("[::1]:10254"));
  EXPECT_FALSE(parseAdminEndpoint("localhost:10254"));
  EXPECT_FALSE(parseAdminEndpoint("127.0.0.1"));
  EXPECT_FALSE(parseAdminEndpoint("127.0.0.1:0"));
  EXPECT_FALSE(parseAdminEndpoint("::1:10254"));
}

}  // namespace
}  // namespace sluice::cli
