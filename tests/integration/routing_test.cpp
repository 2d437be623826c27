// End-to-end routing through the real agent: the ingress-controller-conformance path and host
// rules, default backends, class selection and load balancing, each answered by a real backend
// that reports which service it is.
#include <set>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace sluice::test {
namespace {

struct Backends {
  std::map<std::string, std::unique_ptr<EchoBackend>> by_name;
  EchoBackend& add(const std::string& name) {
    auto& b = by_name[name];
    b = std::make_unique<EchoBackend>(name);
    return *b;
  }
};

class ConformancePaths : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    backends_ = new Backends();
    manifests_ = new TempDir();
    std::string svcs;
    for (const char* name :
         {"foo-exact", "foo-prefix", "aaa-slash-bbb-prefix", "aaa-prefix",
          "aaa-slash-bbb-slash-prefix", "foo-slash-exact", "wildcard-foo-com", "foo-bar-com"}) {
      auto& b = backends_->add(name);
      svcs += serviceYaml(name, 8080, std::string(name) == "foo-bar-com" ? "http" : "",
                          {{"127.0.0.1", b.port()}}) +
              "---\n";
    }
    manifests_->write("services.yaml", svcs);
    manifests_->write("class.yaml", ingressClassYaml());
    manifests_->write(
        "ingresses.yaml",
        ingressYaml("path-rules",
                    {
                        {"exact-path-rules", {{"/foo", "Exact", "foo-exact", "8080"}}},
                        {"prefix-path-rules",
                         {{"/foo", "Prefix", "foo-prefix", "8080"},
                          {"/aaa/bbb", "Prefix", "aaa-slash-bbb-prefix", "8080"},
                          {"/aaa", "Prefix", "aaa-prefix", "8080"}}},
                        {"mixed-path-rules",
                         {{"/foo", "Prefix", "foo-prefix", "8080"},
                          {"/foo", "Exact", "foo-exact", "8080"}}},
                        {"trailing-slash-path-rules",
                         {{"/aaa/bbb/", "Prefix", "aaa-slash-bbb-slash-prefix", "8080"},
                          {"/foo/", "Exact", "foo-slash-exact", "8080"}}},
                    }) +
            "---\n" +
            ingressYaml("host-rules",
                        {{"*.foo.com", {{"/", "Prefix", "wildcard-foo-com", "8080"}}},
                         {"foo.bar.com", {{"/", "Prefix", "foo-bar-com", "http"}}}},
                        "", "", "sluice", "default", "2024-01-02T00:00:00Z"));
    agent_ = new Agent(manifests_->path());
  }
  static void TearDownTestSuite() {
    delete agent_;
    delete manifests_;
    delete backends_;
  }
  static Backends* backends_;
  static TempDir* manifests_;
  static Agent* agent_;
};
Backends* ConformancePaths::backends_ = nullptr;
TempDir* ConformancePaths::manifests_ = nullptr;
Agent* ConformancePaths::agent_ = nullptr;

struct Case {
  const char* id;
  const char* host;
  const char* path;
  int status;
  const char* service;  // "" for agent 404
};

TEST_F(ConformancePaths, EveryRowOfTheConformanceTables) {
  const Case cases[] = {
      {"P1", "exact-path-rules", "/foo", 200, "foo-exact"},
      {"P2", "exact-path-rules", "/foo/", 404, ""},
      {"P3", "exact-path-rules", "/FOO", 404, ""},
      {"P4", "exact-path-rules", "/bar", 404, ""},
      {"P5", "prefix-path-rules", "/foo", 200, "foo-prefix"},
      {"P6", "prefix-path-rules", "/foo/", 200, "foo-prefix"},
      {"P7", "prefix-path-rules", "/FOO", 404, ""},
      {"P8", "prefix-path-rules", "/aaa/bbb", 200, "aaa-slash-bbb-prefix"},
      {"P9", "prefix-path-rules", "/aaa/bbb/ccc", 200, "aaa-slash-bbb-prefix"},
      {"P10", "prefix-path-rules", "/aaa/ccc", 200, "aaa-prefix"},
      {"P11", "prefix-path-rules", "/aaaccc", 404, ""},
      {"P12", "mixed-path-rules", "/foo", 200, "foo-exact"},
      {"P12b", "mixed-path-rules", "/foo/bar", 200, "foo-prefix"},
      {"P13", "trailing-slash-path-rules", "/aaa/bbb", 200, "aaa-slash-bbb-slash-prefix"},
      {"P14", "trailing-slash-path-rules", "/aaa/bbb/", 200, "aaa-slash-bbb-slash-prefix"},
      {"P15", "trailing-slash-path-rules", "/foo", 404, ""},
      {"P16", "trailing-slash-path-rules", "/foo/", 200, "foo-slash-exact"},
      {"H2", "foo.bar.com", "/", 200, "foo-bar-com"},
      {"H2-port", "foo.bar.com:8080", "/x", 200, "foo-bar-com"},
      {"H2-case", "FOO.Bar.COM", "/", 200, "foo-bar-com"},
      {"H3", "subdomain.bar.com", "/", 404, ""},
      {"H4", "bar.foo.com", "/", 200, "wildcard-foo-com"},
      {"H5", "baz.bar.foo.com", "/", 404, ""},
      {"H6", "foo.com", "/", 404, ""},
  };
  for (const Case& c : cases) {
    auto r = request(agent_->port(), "GET", c.host, c.path);
    ASSERT_TRUE(r) << c.id;
    EXPECT_EQ(r->status, c.status) << c.id << " " << c.host << c.path;
    if (c.status == 200) {
      EXPECT_EQ(served(r), c.service) << c.id;
      auto v = r->json().as_object();
      EXPECT_EQ(v.at("path").as_string(), c.path) << c.id;
    } else {
      EXPECT_EQ(r->body, "no route\n") << c.id << ": the 404 must come from the agent";
    }
  }
}

TEST_F(ConformancePaths, LargeHeadsAreAcceptedUpToTheDefaultLimit) {
  // Buffers start at 16 KiB and grow for a bigger head, up to --max-header-bytes (32 KiB).
  const std::string cookie(24 * 1024, 'c');
  auto r = request(agent_->port(), "GET", "foo.bar.com", "/big", "Cookie: " + cookie + "\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find(cookie), std::string::npos);
  auto too_big = request(agent_->port(), "GET", "foo.bar.com", "/big",
                         "Cookie: " + std::string(40 * 1024, 'c') + "\r\n");
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->status, 431);
}

TEST_F(ConformancePaths, BackendSeesHostUnchangedAndForwardedHeaders) {
  auto r = request(agent_->port(), "GET", "bar.foo.com", "/x?y=1",
                   "User-Agent: Go-http-client/1.1\r\nX-Forwarded-For: 203.0.113.9\r\n"
                   "Connection: keep-alive, X-Secret\r\nX-Secret: drop-me\r\nKeep-Alive: 5\r\n"
                   "X-Forwarded-Proto: https\r\n");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  auto v = r->json().as_object();
  EXPECT_EQ(v.at("path").as_string(), "/x?y=1");
  EXPECT_EQ(v.at("version").as_string(), "HTTP/1.1");
  std::map<std::string, std::string> h;
  for (const auto& kv : v.at("headers").as_array()) {
    std::string k(kv.as_array()[0].as_string());
    std::transform(k.begin(), k.end(), k.begin(), ::tolower);
    h[k] = std::string(kv.as_array()[1].as_string());
  }
  EXPECT_EQ(h["host"], "bar.foo.com");
  EXPECT_EQ(h["user-agent"], "Go-http-client/1.1");
  // The peer is not a trusted proxy: its X-Forwarded-* are replaced, not extended.
  EXPECT_EQ(h["x-forwarded-for"], "127.0.0.1");
  EXPECT_EQ(h["x-real-ip"], "127.0.0.1");
  EXPECT_EQ(h["x-forwarded-proto"], "http");
  EXPECT_EQ(h["x-forwarded-host"], "bar.foo.com");
  EXPECT_EQ(h.count("x-secret"), 0u) << "fields named in Connection are hop-by-hop";
  EXPECT_EQ(h.count("keep-alive"), 0u);
  // Response framing is passed through, not re-chunked.
  EXPECT_TRUE(r->header("Content-Length"));
  EXPECT_TRUE(r->header("Content-Type"));
  EXPECT_TRUE(r->header("Date"));
  EXPECT_TRUE(r->header("Server"));
}

// The Kubernetes documentation's path-matching examples table, one host per row, every rule
// backed by its own service so the answer names the rule that matched.
TEST(DocsTable, EveryRowHoldsEndToEnd) {
  struct RulePath {
    const char* path;
    const char* type;
    const char* service;
  };
  struct Row {
    std::vector<RulePath> rules;
    const char* request;
    const char* expect;  // service, or "" for 404
  };
  const std::vector<Row> rows = {
      {{{"/", "Prefix", "p-root"}}, "/anything/at/all", "p-root"},
      {{{"/foo", "Exact", "e-foo"}}, "/foo", "e-foo"},
      {{{"/foo", "Exact", "e-foo"}}, "/bar", ""},
      {{{"/foo", "Exact", "e-foo"}}, "/foo/", ""},
      {{{"/foo/", "Exact", "e-foo-slash"}}, "/foo", ""},
      {{{"/foo", "Prefix", "p-foo"}}, "/foo", "p-foo"},
      {{{"/foo", "Prefix", "p-foo"}}, "/foo/", "p-foo"},
      {{{"/foo/", "Prefix", "p-foo-slash"}}, "/foo", "p-foo-slash"},
      {{{"/foo/", "Prefix", "p-foo-slash"}}, "/foo/", "p-foo-slash"},
      {{{"/aaa/bb", "Prefix", "p-aaa-bb"}}, "/aaa/bbb", ""},
      {{{"/aaa/bbb", "Prefix", "p-aaa-bbb"}}, "/aaa/bbb", "p-aaa-bbb"},
      {{{"/aaa/bbb/", "Prefix", "p-aaa-bbb-slash"}}, "/aaa/bbb", "p-aaa-bbb-slash"},
      {{{"/aaa/bbb", "Prefix", "p-aaa-bbb"}}, "/aaa/bbb/", "p-aaa-bbb"},
      {{{"/aaa/bbb", "Prefix", "p-aaa-bbb"}}, "/aaa/bbb/ccc", "p-aaa-bbb"},
      {{{"/aaa/bbb", "Prefix", "p-aaa-bbb"}}, "/aaa/bbbxyz", ""},
      {{{"/", "Prefix", "p-root"}, {"/aaa", "Prefix", "p-aaa"}}, "/aaa/ccc", "p-aaa"},
      {{{"/", "Prefix", "p-root"},
        {"/aaa", "Prefix", "p-aaa"},
        {"/aaa/bbb", "Prefix", "p-aaa-bbb"}},
       "/aaa/bbb",
       "p-aaa-bbb"},
      {{{"/", "Prefix", "p-root"},
        {"/aaa", "Prefix", "p-aaa"},
        {"/aaa/bbb", "Prefix", "p-aaa-bbb"}},
       "/ccc",
       "p-root"},
      {{{"/aaa", "Prefix", "p-aaa"}}, "/ccc", ""},
      {{{"/foo", "Prefix", "p-foo"}, {"/foo", "Exact", "e-foo"}}, "/foo", "e-foo"},
  };
  std::map<std::string, std::unique_ptr<EchoBackend>> backends;
  std::string yaml = ingressClassYaml();
  std::vector<Rule> rules;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    Rule rule{"row" + std::to_string(i) + ".docs", {}};
    for (const auto& rp : rows[i].rules) {
      if (!backends.count(rp.service)) {
        backends[rp.service] = std::make_unique<EchoBackend>(rp.service);
        yaml += "---\n" +
                serviceYaml(rp.service, 80, "", {{"127.0.0.1", backends[rp.service]->port()}});
      }
      rule.paths.push_back({rp.path, rp.type, rp.service, "80"});
    }
    rules.push_back(rule);
  }
  TempDir dir;
  dir.write("docs.yaml", yaml + "---\n" + ingressYaml("docs-table", rules));
  Agent agent(dir.path());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::string host = "row" + std::to_string(i) + ".docs";
    auto r = request(agent.port(), "GET", host, rows[i].request);
    ASSERT_TRUE(r) << host;
    if (*rows[i].expect == '\0') {
      EXPECT_EQ(r->status, 404) << "row " << i << " " << rows[i].request;
    } else {
      EXPECT_EQ(served(r), rows[i].expect) << "row " << i << " " << rows[i].request;
    }
  }
}

TEST(DefaultBackend, AnyMethodAnyHostAnyPath) {
  EchoBackend echo("echo-service");
  TempDir dir;
  dir.write("all.yaml", ingressClassYaml() + "---\n" +
                            serviceYaml("echo-service", 8080, "", {{"127.0.0.1", echo.port()}}) +
                            "---\n" + ingressYaml("default-backend", {}, "echo-service", "8080"));
  Agent agent(dir.path());
  const struct {
    const char* method;
    const char* host;
    const char* path;
  } cases[] = {{"GET", "my-host", "/"},
               {"GET", "my-host", "/sub-path"},
               {"POST", "some-host", "/"},
               {"PUT", "127.0.0.1", "/resource"},
               {"DELETE", "some-host", "/resource"},
               {"PATCH", "my-host", "/resource"}};
  for (const auto& c : cases) {
    auto r = request(agent.port(), c.method, c.host, c.path, "User-Agent: Go-http-client/1.1\r\n");
    ASSERT_TRUE(r) << c.method << " " << c.path;
    EXPECT_EQ(r->status, 200);
    auto v = r->json().as_object();
    EXPECT_EQ(v.at("service").as_string(), "echo-service");
    EXPECT_EQ(v.at("method").as_string(), c.method);
    EXPECT_EQ(v.at("path").as_string(), c.path);
  }
}

TEST(IngressClass, OtherClassesAreIgnoredEntirely) {
  EchoBackend mine("mine");
  EchoBackend theirs("theirs");
  TempDir dir;
  dir.write("a.yaml",
            ingressClassYaml() + "---\n" + ingressClassYaml("nginx", "k8s.io/ingress-nginx") +
                "---\n" + serviceYaml("mine", 80, "", {{"127.0.0.1", mine.port()}}) + "---\n" +
                serviceYaml("theirs", 80, "", {{"127.0.0.1", theirs.port()}}) + "---\n" +
                ingressYaml("ours", {{"a.example", {{"/", "Prefix", "mine", "80"}}}}) + "---\n" +
                ingressYaml("other", {{"b.example", {{"/", "Prefix", "theirs", "80"}}}}, "theirs",
                            "80", "nginx") +
                "---\n" +
                ingressYaml("invalid-class", {{"c.example", {{"/", "Prefix", "theirs", "80"}}}}, "",
                            "", "some-invalid-class-name") +
                "---\n" +
                ingressYaml("legacy", {{"d.example", {{"/", "Prefix", "mine", "80"}}}}, "", "", "",
                            "default", "2024-01-01T00:00:00Z",
                            "    kubernetes.io/ingress.class: sluice\n"));
  Agent agent(dir.path());
  EXPECT_EQ(served(request(agent.port(), "GET", "a.example", "/")), "mine");
  EXPECT_EQ(request(agent.port(), "GET", "b.example", "/")->status, 404);
  EXPECT_EQ(request(agent.port(), "GET", "c.example", "/")->status, 404);
  EXPECT_EQ(served(request(agent.port(), "GET", "d.example", "/")), "mine");
  EXPECT_EQ(theirs.requestsSeen(), 0u);
}

TEST(LoadBalancing, RoundRobinReachesEveryReadyEndpoint) {
  std::vector<std::unique_ptr<EchoBackend>> pods;
  std::vector<Ep> eps;
  for (int i = 0; i < 10; ++i) {
    pods.push_back(std::make_unique<EchoBackend>("echo-service"));
    eps.push_back({"127.0.0.1", pods.back()->port()});
  }
  EchoBackend not_ready("not-ready");
  eps.push_back({"127.0.0.1", not_ready.port(), false, false, false});
  TempDir dir;
  dir.write("lb.yaml", ingressClassYaml() + "---\n" + serviceYaml("echo-service", 8080, "", eps) +
                           "---\n" + ingressYaml("lb", {}, "echo-service", "8080"));
  Agent agent(dir.path(), {{}, 1});
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto r = request(agent.port(), "GET", "load-balancing", "/");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    seen.insert(std::string(r->json().as_object().at("pod").as_string()));
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(not_ready.requestsSeen(), 0u);
}

TEST(LoadBalancing, LeastRequestAvoidsTheSlowEndpoint) {
  EchoBackend a("svc");
  EchoBackend b("svc");
  TempDir dir;
  dir.write("lb.yaml",
            ingressClassYaml() + "---\n" +
                serviceYaml("svc", 80, "", {{"127.0.0.1", a.port()}, {"127.0.0.1", b.port()}},
                            "default", "    sluice.dev/load-balance: least-request\n") +
                "---\n" + ingressYaml("lb", {}, "svc", "80"));
  Agent agent(dir.path(), {{}, 1});
  // Hold requests open on whichever endpoint they land; P2C then steers new ones to the other.
  std::vector<std::unique_ptr<Connection>> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<Connection>(agent.port()));
    slow.back()->send("GET /delay/1500 HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  std::this_thread::sleep_for(200ms);
  auto state = boost::json::parse(httpGet(agent.adminPort(), "/debug/state")).as_object();
  auto eps = state.at("clusters").as_array()[0].as_object().at("endpoints").as_array();
  ASSERT_EQ(eps.size(), 2u);
  EXPECT_EQ(state.at("clusters").as_array()[0].as_object().at("load_balance").as_string(),
            "least-request");
  const auto a0 = eps[0].as_object().at("active_requests").to_number<int>();
  const auto a1 = eps[1].as_object().at("active_requests").to_number<int>();
  EXPECT_EQ(a0 + a1, 4);
  EXPECT_LE(std::abs(a0 - a1), 2) << "P2C spreads concurrent requests";
  for (auto& c : slow) {
    auto r = c->read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
}

TEST(Endpoints, NoEndpointsIs503AndTerminatingFallbackServes) {
  EchoBackend term("term");
  TempDir dir;
  dir.write("a.yaml",
            ingressClassYaml() + "---\n" + serviceYaml("empty", 80, "", {}) + "---\n" +
                serviceYaml("draining", 80, "", {{"127.0.0.1", term.port(), false, true, true}}) +
                "---\n" +
                ingressYaml("a", {{"empty.example", {{"/", "Prefix", "empty", "80"}}},
                                  {"draining.example", {{"/", "Prefix", "draining", "80"}}},
                                  {"missing.example", {{"/", "Prefix", "nosuch", "80"}}}}));
  Agent agent(dir.path());
  auto r = request(agent.port(), "GET", "empty.example", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "no endpoints\n");
  EXPECT_EQ(request(agent.port(), "GET", "missing.example", "/")->status, 503);
  EXPECT_EQ(served(request(agent.port(), "GET", "draining.example", "/")), "term");
}

}  // namespace
}  // namespace sluice::test
