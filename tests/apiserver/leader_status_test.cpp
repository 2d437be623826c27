// Leader election and the Ingress status writer against the fake API server: at most one leader,
// takeover after a crash (lease expiry) or a release (at once), leadership ending on time when
// the server stops answering, and status written for our class only, only by the leader.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "control/leader.hpp"
#include "control/status_writer.hpp"
#include "fake.hpp"
#include "k8s/api/source.hpp"

namespace sluice::k8s::api {
namespace {

using control::LeaderElectionOptions;
using control::LeaderElector;
using control::LeaderStats;
using control::microTime;
using control::parsePublishAddresses;
using control::StatusWriter;
using control::StatusWriterOptions;
using control::validate;

namespace json = boost::json;
using namespace std::chrono_literals;
using test::eventually;
using test::FakeApiServer;
using Clock = std::chrono::steady_clock;

constexpr const char* kNs = "sluice-system";
constexpr const char* kLease = "sluice-leader";

// ---- fixture ----

class ApiTest : public ::testing::Test {
protected:
  ApiTest() {
    test::writeFileAtomic(tokenFile(), "token-1\n");
    client_options_.connect_timeout = 2s;
    client_options_.request_timeout = 5s;
  }
  ~ApiTest() override {
    io_.run([&] {
      for (auto& w : writers_) {
        w->stop();
      }
      for (auto& e : electors_) {
        e->stop(false);
      }
      if (source_) {
        source_->stop();
      }
      for (auto& c : clients_) {
        c->shutdown();
      }
    });
    EXPECT_TRUE(io_.windDown(10s)) << "coroutines still running after stop()";
  }

  std::filesystem::path tokenFile() const { return fake_.dir() / "client-token"; }

  std::shared_ptr<Client> newClient() {
    auto made =
        Client::create(io_.executor(), test::fakeConnection(fake_, tokenFile()), client_options_);
    EXPECT_OK(made);
    clients_.push_back(*made);
    return *made;
  }

  LeaderElectionOptions electionOptions(const std::string& identity) const {
    LeaderElectionOptions o;
    o.ns = kNs;
    o.name = kLease;
    o.identity = identity;
    o.lease_duration = 2s;
    o.renew_deadline = 1500ms;
    o.retry_period = 250ms;
    return o;
  }

  // Starts a candidate; changes(identity) records its on_change calls.
  std::shared_ptr<LeaderElector> candidate(const LeaderElectionOptions& options) {
    EXPECT_OK(validate(options));
    auto e = std::make_shared<LeaderElector>(
        newClient(), options,
        [this, id = options.identity](bool leading) { changes_[id].push_back(leading); });
    electors_.push_back(e);
    io_.run([&] { e->start(); });
    return e;
  }

  bool leading(const std::shared_ptr<LeaderElector>& e) {
    return io_.run([&] { return e->leading(); });
  }
  std::vector<bool> changes(const std::string& identity) {
    return io_.run([&] { return changes_[identity]; });
  }
  LeaderStats stats(const std::shared_ptr<LeaderElector>& e) {
    return io_.run([&] { return e->stats(); });
  }

  // The fake's copy of an object, or null.
  json::value object(const std::string& kind, const std::string& ns, const std::string& name) {
    const json::value all = fake_.objects();
    for (const json::value& o : all.at("items").as_array()) {
      const json::object& meta = o.at("metadata").as_object();
      if (o.at("kind").as_string() == kind && meta.at("name").as_string() == name &&
          (!meta.contains("namespace") || meta.at("namespace").as_string() == ns)) {
        return o;
      }
    }
    return nullptr;
  }
  std::string leaseHolder() {
    const json::value lease = object("Lease", kNs, kLease);
    if (lease.is_null()) {
      return "<none>";
    }
    const json::value* h = lease.at("spec").as_object().if_contains("holderIdentity");
    return h != nullptr && h->is_string() ? std::string(h->get_string()) : "";
  }

  // PUT and POST requests the fake saw, as "METHOD path".
  std::vector<std::string> writes() {
    std::vector<std::string> out;
    const json::value reqs = fake_.requests();
    for (const json::value& r : reqs.as_array()) {
      if (r.at("method").as_string() != "GET") {
        out.push_back(std::string(r.at("method").as_string()) + " " +
                      std::string(r.at("path").as_string()));
      }
    }
    return out;
  }

  FakeApiServer fake_;
  test::IoThread io_;
  ClientOptions client_options_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::vector<std::shared_ptr<LeaderElector>> electors_;
  std::vector<std::shared_ptr<StatusWriter>> writers_;
  std::unique_ptr<ApiSource> source_;
  std::map<std::string, std::vector<bool>> changes_;  // by identity; on the I/O thread
};

// ---- leader election ----

using LeaderElection = ApiTest;

TEST_F(LeaderElection, OptionsAreValidated) {
  LeaderElectionOptions o = electionOptions("a");
  EXPECT_OK(validate(o));
  o.renew_deadline = o.lease_duration;
  EXPECT_THAT(test::errorOf(validate(o)), ::testing::HasSubstr("lease duration > renew deadline"));
  o = electionOptions("");
  EXPECT_THAT(test::errorOf(validate(o)), ::testing::HasSubstr("identity"));
  o = electionOptions("a");
  o.lease_duration = 900ms;
  o.renew_deadline = 800ms;
  EXPECT_THAT(test::errorOf(validate(o)), ::testing::HasSubstr("at least 1 s"));
}

TEST_F(LeaderElection, CreatesTheLeaseAndRenewsIt) {
  auto a = candidate(electionOptions("agent-a"));
  ASSERT_TRUE(eventually([&] { return leading(a); }, 5s));
  const json::value lease = object("Lease", kNs, kLease);
  ASSERT_FALSE(lease.is_null());
  const json::object& spec = lease.at("spec").as_object();
  EXPECT_EQ(spec.at("holderIdentity").as_string(), "agent-a");
  EXPECT_EQ(spec.at("leaseDurationSeconds").as_int64(), 2);
  EXPECT_EQ(spec.at("leaseTransitions").as_int64(), 0);
  // MicroTime: six fractional digits, UTC.
  const std::string renew(spec.at("renewTime").as_string());
  EXPECT_THAT(renew, ::testing::MatchesRegex(
                         "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z"));
  ASSERT_TRUE(eventually([&] { return stats(a).renewals >= 4; }, 5s));
  const json::value later = object("Lease", kNs, kLease);
  EXPECT_NE(later.at("spec").at("renewTime").as_string(), renew);
  EXPECT_EQ(later.at("spec").at("acquireTime").as_string(), spec.at("acquireTime").as_string());
  EXPECT_TRUE(leading(a));
  EXPECT_EQ(changes("agent-a"), std::vector<bool>{true});
}

TEST_F(LeaderElection, LeaseSecondsAreRoundedUp) {
  LeaderElectionOptions o = electionOptions("agent-a");
  o.lease_duration = 1500ms;  // stored as 2 s: followers never wait less than we may lead
  o.renew_deadline = 1200ms;
  auto a = candidate(o);
  ASSERT_TRUE(eventually([&] { return leading(a); }, 5s));
  EXPECT_EQ(object("Lease", kNs, kLease).at("spec").at("leaseDurationSeconds").as_int64(), 2);
}

TEST_F(LeaderElection, NeverTwoLeaders) {
  std::vector<std::shared_ptr<LeaderElector>> all;
  for (const char* id : {"agent-a", "agent-b", "agent-c"}) {
    all.push_back(candidate(electionOptions(id)));
  }
  auto count = [&] {
    return io_.run([&] {
      int n = 0;
      for (auto& e : all) {
        n += e->leading() ? 1 : 0;
      }
      return n;
    });
  };
  ASSERT_TRUE(eventually([&] { return count() == 1; }, 5s));
  int max_seen = 0;
  const auto until = Clock::now() + 3s;
  while (Clock::now() < until) {
    max_seen = std::max(max_seen, count());
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(max_seen, 1);
  EXPECT_EQ(count(), 1);
}

TEST_F(LeaderElection, CrashedLeaderIsReplacedOnlyAfterTheLeaseExpires) {
  auto a = candidate(electionOptions("agent-a"));
  ASSERT_TRUE(eventually([&] { return leading(a); }, 5s));
  auto b = candidate(electionOptions("agent-b"));
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(leading(b)) << "took over a live lease";
  // A crash: no release; the Lease still names agent-a until it expires.
  const auto stopped = Clock::now();
  io_.run([&] { a->stop(false); });
  ASSERT_TRUE(eventually([&] { return leading(b); }, 10s));
  const auto took = Clock::now() - stopped;
  const auto lease = electionOptions("").lease_duration;
  const auto retry = electionOptions("").retry_period;
  EXPECT_GE(took, lease - retry - 100ms) << "took over before the lease expired";
  EXPECT_EQ(leaseHolder(), "agent-b");
  EXPECT_EQ(object("Lease", kNs, kLease).at("spec").at("leaseTransitions").as_int64(), 1);
}

TEST_F(LeaderElection, ReleasedLeaseIsTakenOverAtOnce) {
  LeaderElectionOptions slow_a = electionOptions("agent-a");
  LeaderElectionOptions slow_b = electionOptions("agent-b");
  for (auto* o : {&slow_a, &slow_b}) {
    o->lease_duration = 6s;
    o->renew_deadline = 4s;
  }
  auto a = candidate(slow_a);
  ASSERT_TRUE(eventually([&] { return leading(a); }, 5s));
  auto b = candidate(slow_b);
  std::this_thread::sleep_for(500ms);
  const auto stopped = Clock::now();
  io_.run([&] { a->stop(true); });
  EXPECT_FALSE(leading(a));
  ASSERT_TRUE(eventually([&] { return leading(b); }, 10s));
  EXPECT_LT(Clock::now() - stopped, 3s) << "waited for expiry instead of taking the release";
  EXPECT_TRUE(io_.run([&] { return a->settled(); }));
}

TEST_F(LeaderElection, LeadershipEndsWithinTheRenewDeadlineWhenTheServerHangs) {
  client_options_.request_timeout = 30s;  // the hung requests outlast the deadline
  auto a = candidate(electionOptions("agent-a"));
  ASSERT_TRUE(eventually([&] { return leading(a); }, 5s));
  fake_.fault(R"({"hang": ["get", "write"]})");
  const auto hung = Clock::now();
  ASSERT_TRUE(eventually([&] { return !leading(a); }, 5s));
  const auto lost_after = Clock::now() - hung;
  EXPECT_LE(lost_after, electionOptions("").renew_deadline + 300ms);
  ASSERT_TRUE(eventually([&] { return changes("agent-a").size() == 2; }, 2s))
      << "on_change(false) missing";
  EXPECT_EQ(changes("agent-a"), (std::vector<bool>{true, false}));
  EXPECT_EQ(stats(a).losses, 1u);
  fake_.fault(R"({"hang": null})");
}

TEST_F(LeaderElection, AnotherHolderOnTheLeaseEndsLeadershipAtOnce) {
  auto a = candidate(electionOptions("agent-a"));
  ASSERT_TRUE(eventually([&] { return leading(a); }, 5s));
  // Someone else's write (e.g. an operator, or a candidate with a skewed view) names another
  // holder with a fresh record.
  json::value lease = object("Lease", kNs, kLease);
  lease.at("spec").as_object()["holderIdentity"] = "intruder";
  lease.at("spec").as_object()["renewTime"] = microTime(std::chrono::system_clock::now());
  const auto written = Clock::now();
  fake_.apply(json::serialize(lease));
  ASSERT_TRUE(eventually([&] { return !leading(a); }, 5s));
  EXPECT_LT(Clock::now() - written, 1s);
  EXPECT_EQ(stats(a).holder, "intruder");
  // The intruder never renews: after its lease expires, agent-a takes the Lease back.
  ASSERT_TRUE(eventually([&] { return leading(a); }, 10s));
  EXPECT_GE(Clock::now() - written, 1500ms);
  EXPECT_EQ(leaseHolder(), "agent-a");
}

TEST_F(LeaderElection, ALostCreateRaceFollows) {
  fake_.fault(R"({"write_conflict": {"leases": 1}})");
  auto a = candidate(electionOptions("agent-a"));
  ASSERT_TRUE(eventually([&] { return leading(a); }, 5s));
  EXPECT_EQ(stats(a).conflicts, 1u);
  EXPECT_EQ(stats(a).failures, 0u);
}

// ---- Ingress status ----

std::string ingressClass(const std::string& name, const std::string& controller) {
  return R"({"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":")" +
         name + R"("},"spec":{"controller":")" + controller + R"("}})";
}

// An Ingress with spec.ingressClassName `cls`, or the legacy annotation if `legacy` is set.
std::string ingress(const std::string& name, const std::string& cls, bool legacy = false) {
  const std::string meta =
      legacy ? R"(,"annotations":{"kubernetes.io/ingress.class":")" + cls + R"("})" : "";
  const std::string class_field = legacy ? "" : R"("ingressClassName":")" + cls + R"(",)";
  return R"({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":")" + name +
         R"(","namespace":"web")" + meta + "},\"spec\":{" + class_field + R"("rules":[{"host":")" +
         name +
         R"(.example","http":{"paths":[{"path":"/","pathType":"Prefix",)"
         R"("backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}})";
}

class IngressStatus : public ApiTest {
protected:
  void SetUp() override {
    fake_.apply(ingressClass("sluice", "sluice.dev/ingress"));
    fake_.apply(ingressClass("other", "example.com/other"));
    fake_.apply(ingress("mine", "sluice"));
    fake_.apply(ingress("legacy", "sluice", true));
    fake_.apply(ingress("theirs", "other"));
    fake_.apply(ingress("legacy-theirs", "nginx", true));
  }

  void startSource() {
    ApiSourceOptions options;
    options.quiet = 20ms;
    options.informer.backoff_initial = 50ms;
    source_ = std::make_unique<ApiSource>(newClient(), options);
    io_.run([&] {
      source_->start([this] {
        for (auto& w : writers_) {
          w->kick();
        }
      });
    });
    ASSERT_TRUE(eventually([&] { return io_.run([&] { return source_->ready(); }); }));
  }

  std::shared_ptr<StatusWriter> makeWriter(const std::string& addresses,
                                           std::function<bool()> may_write) {
    StatusWriterOptions options;
    auto parsed = parsePublishAddresses(addresses);
    EXPECT_OK(parsed);
    options.addresses = parsed.valueOr({});
    options.backoff_initial = 50ms;
    options.backoff_max = 500ms;
    auto w = std::make_shared<StatusWriter>(newClient(), source_->store(), options,
                                            std::move(may_write));
    writers_.push_back(w);
    return w;
  }
  std::shared_ptr<StatusWriter> writer(const std::string& addresses,
                                       std::function<bool()> may_write) {
    auto w = makeWriter(addresses, std::move(may_write));
    io_.run([&] { w->start(); });
    return w;
  }

  // status.loadBalancer.ingress of web/NAME as "ip|hostname,…" ("-" if there is no status).
  std::string published(const std::string& name) {
    const json::value ing = object("Ingress", "web", name);
    const json::value* status = ing.is_object() ? ing.as_object().if_contains("status") : nullptr;
    if (status == nullptr || !status->is_object() ||
        !status->as_object().contains("loadBalancer")) {
      return "-";
    }
    std::string out;
    for (const json::value& e : status->at("loadBalancer").at("ingress").as_array()) {
      const json::object& o = e.as_object();
      out += (out.empty() ? "" : ",") +
             std::string(o.contains("ip") ? o.at("ip").as_string() : o.at("hostname").as_string());
    }
    return out;
  }

  std::atomic<bool> leader_{true};
  std::function<bool()> isLeader() {
    return [this] { return leader_.load(); };
  }
};

TEST(PublishAddresses, ParsesIpsAndNames) {
  auto parsed = parsePublishAddresses("192.0.2.1,lb.example.com,2001:db8::1,192.0.2.1");
  ASSERT_OK(parsed);
  const std::vector<LoadBalancerIngress>& out = *parsed;
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].ip, "192.0.2.1");
  EXPECT_EQ(out[1].hostname, "lb.example.com");
  EXPECT_EQ(out[2].ip, "2001:db8::1");
  EXPECT_THAT(test::errorOf(parsePublishAddresses("192.0.2.1,,x")),
              ::testing::HasSubstr("empty entry"));
  EXPECT_THAT(test::errorOf(parsePublishAddresses("LB.example.com")),
              ::testing::HasSubstr("neither an IP address nor a lower-case DNS name"));
  EXPECT_THAT(test::errorOf(parsePublishAddresses("a..b")), ::testing::HasSubstr("'a..b'"));
  EXPECT_THAT(test::errorOf(parsePublishAddresses("-a.b")), ::testing::HasSubstr("'-a.b'"));
  EXPECT_THAT(test::errorOf(parsePublishAddresses("\"},{\"ip\":\"1.2.3.4")),
              ::testing::HasSubstr("neither"));
}

TEST_F(IngressStatus, WrittenForOurClassOnly) {
  startSource();
  auto w = writer("192.0.2.10,lb.example.com", isLeader());
  ASSERT_TRUE(eventually([&] {
    return published("mine") == "192.0.2.10,lb.example.com" &&
           published("legacy") == "192.0.2.10,lb.example.com";
  })) << published("mine")
      << " / " << published("legacy");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(published("theirs"), "-");
  EXPECT_EQ(published("legacy-theirs"), "-");
  for (const std::string& write : writes()) {
    EXPECT_THAT(write, ::testing::AnyOf(::testing::EndsWith("/ingresses/mine/status"),
                                        ::testing::EndsWith("/ingresses/legacy/status")));
  }
  // The spec is untouched: only the status subresource was written.
  EXPECT_EQ(object("Ingress", "web", "mine").at("spec").at("ingressClassName").as_string(),
            "sluice");
}

TEST_F(IngressStatus, IdempotentAndRestoredAfterAnOutsideEdit) {
  startSource();
  auto w = writer("192.0.2.10", isLeader());
  ASSERT_TRUE(eventually([&] { return published("mine") == "192.0.2.10"; }));
  ASSERT_TRUE(eventually([&] { return published("legacy") == "192.0.2.10"; }));
  std::this_thread::sleep_for(500ms);
  const std::size_t settled = writes().size();
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(writes().size(), settled) << "rewrote a status that was already current";
  // Someone else overwrites our status: we put ours back.
  json::value mine = object("Ingress", "web", "mine");
  mine.as_object()["status"] = json::parse(R"({"loadBalancer":{"ingress":[{"ip":"10.9.9.9"}]}})");
  fake_.apply(json::serialize(mine));
  ASSERT_TRUE(eventually([&] { return published("mine") == "192.0.2.10"; }));
}

TEST_F(IngressStatus, NothingWrittenUnlessLeader) {
  leader_ = false;
  startSource();
  auto w = writer("192.0.2.10", isLeader());
  io_.run([&] { w->kick(); });
  std::this_thread::sleep_for(1s);
  EXPECT_THAT(writes(), ::testing::IsEmpty());
  leader_ = true;
  io_.run([&] { w->kick(); });  // the agent kicks on gaining leadership
  ASSERT_TRUE(eventually([&] { return published("mine") == "192.0.2.10"; }));
}

TEST_F(IngressStatus, LeadershipLostBetweenGetAndPutWritesNothing) {
  startSource();
  fake_.control("POST", "/requests/clear");
  fake_.fault(R"({"delay_ms": 1500})");  // every GET now takes 1.5 s
  auto w = writer("192.0.2.10", isLeader());
  // Wait until the writer's GET of an Ingress is at the server, then lose leadership.
  ASSERT_TRUE(eventually([&] {
    const json::value reqs = fake_.requests();
    for (const json::value& r : reqs.as_array()) {
      const std::string path(r.at("path").as_string());
      if (r.at("method").as_string() == "GET" && path.find("/ingresses/") != std::string::npos) {
        return true;
      }
    }
    return false;
  }));
  leader_ = false;
  std::this_thread::sleep_for(2500ms);
  EXPECT_THAT(writes(), ::testing::IsEmpty());
  EXPECT_EQ(published("mine"), "-");
  fake_.fault(R"({"delay_ms": null})");
}

TEST_F(IngressStatus, ConflictsAreRetried) {
  fake_.fault(R"({"write_conflict": {"ingresses": 3}})");
  startSource();
  auto w = writer("192.0.2.10", isLeader());
  ASSERT_TRUE(eventually(
      [&] { return published("mine") == "192.0.2.10" && published("legacy") == "192.0.2.10"; }));
  EXPECT_GE(io_.run([&] { return w->stats().conflicts; }), 3u);
}

TEST_F(IngressStatus, OnlyTheElectedLeaderWritesAndTheSuccessorTakesOver) {
  startSource();
  struct Agent {
    std::shared_ptr<LeaderElector> elector;
    std::shared_ptr<StatusWriter> writer;
  };
  std::vector<Agent> agents(2);
  const char* addresses[] = {"192.0.2.1", "192.0.2.2"};
  for (int i = 0; i < 2; ++i) {
    Agent& a = agents[i];
    a.writer = makeWriter(addresses[i], [&a] { return a.elector->leading(); });
    a.elector = std::make_shared<LeaderElector>(
        newClient(), electionOptions("agent-" + std::to_string(i)), [&a](bool leading) {
          if (leading) {
            a.writer->kick();  // catch up on what changed while following
          }
        });
    electors_.push_back(a.elector);
    io_.run([&] {
      a.writer->start();
      a.elector->start();
    });
  }
  int leader = -1;
  ASSERT_TRUE(eventually([&] {
    leader = io_.run([&] {
      return agents[0].elector->leading() ? 0 : agents[1].elector->leading() ? 1 : -1;
    });
    return leader >= 0 && published("mine") == addresses[leader];
  }));
  const int follower = 1 - leader;
  EXPECT_EQ(io_.run([&] { return agents[follower].writer->stats().writes; }), 0u);
  // The leader shuts down (releasing the Lease): the successor publishes its own address.
  io_.run([&] {
    agents[leader].writer->stop();
    agents[leader].elector->stop(true);
  });
  ASSERT_TRUE(eventually([&] { return published("mine") == addresses[follower]; }, 10s));
  EXPECT_EQ(published("legacy"), addresses[follower]);
  EXPECT_EQ(published("theirs"), "-");
}

}  // namespace
}  // namespace sluice::k8s::api
