#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "router/route_table.hpp"

namespace sluice::router {
namespace {

using model::DesiredState;
using model::PathRule;
using model::PathType;
using model::VirtualHost;
using ::testing::ElementsAre;

constexpr PathType kExact = PathType::kExact;
constexpr PathType kPrefix = PathType::kPrefix;
constexpr PathType kImpl = PathType::kImplementationSpecific;

// Rule whose cluster is named after the rule itself ("Prefix /foo/"), so a match names the rule.
PathRule rule(PathType type, const std::string& path, std::string cluster = "") {
  if (cluster.empty()) {
    cluster = std::string(type == kExact ? "Exact " : type == kPrefix ? "Prefix " : "Impl ") + path;
  }
  return PathRule{path, type, cluster, "t/i"};
}

// A state over `hosts` whose cluster list is every cluster referenced, sorted.
DesiredState makeState(std::vector<VirtualHost> hosts,
                       std::optional<std::string> global_default = std::nullopt) {
  DesiredState s;
  s.hosts = std::move(hosts);
  s.default_cluster = std::move(global_default);
  std::set<std::string> names;
  for (const auto& h : s.hosts) {
    for (const auto& p : h.paths) {
      names.insert(p.cluster);
    }
    if (h.default_cluster) {
      names.insert(*h.default_cluster);
    }
  }
  if (s.default_cluster) {
    names.insert(*s.default_cluster);
  }
  for (const auto& n : names) {
    s.clusters.push_back(model::Cluster{n, model::LbPolicy::kRoundRobin, {}});
  }
  return s;
}

// "404", the cluster name, or "<cluster> (default)" when reached through a defaultBackend.
std::string route(const RouteTable& table, std::string_view host, std::string_view path) {
  const Match m = table.match(host, path);
  if (m.cluster == kNoCluster) {
    EXPECT_FALSE(m.via_default);
    return m.route == 0 ? "404" : "404 via route " + table.routeLabels().at(m.route);
  }
  EXPECT_LT(m.cluster, table.clusterNames().size());
  EXPECT_LT(m.route, table.routeLabels().size());
  return table.clusterNames().at(m.cluster) + (m.via_default ? " (default)" : "");
}

// ---- every row of the Kubernetes docs path-matching table ----

struct DocsRow {
  std::vector<PathRule> rules;
  std::vector<std::string> requests;
  std::string expect;  // matched rule's cluster, "404", or "default (default)"
};

class DocsTable : public ::testing::TestWithParam<DocsRow> {};

TEST_P(DocsTable, Row) {
  const DocsRow& row = GetParam();
  // YAML order is irrelevant: try the rules as listed and reversed.
  for (bool reversed : {false, true}) {
    std::vector<PathRule> rules = row.rules;
    if (reversed) {
      std::reverse(rules.begin(), rules.end());
    }
    const bool with_default = row.expect == "default (default)";
    auto table = RouteTable::compile(
        makeState({VirtualHost{"", rules, std::nullopt}},
                  with_default ? std::optional<std::string>("default") : std::nullopt));
    for (const auto& request : row.requests) {
      EXPECT_EQ(route(*table, "example.com", request), row.expect)
          << "request " << request << (reversed ? " (rules reversed)" : "");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    KubernetesDocs, DocsTable,
    ::testing::Values(
        DocsRow{{rule(kPrefix, "/")}, {"/", "/anything", "/a/b/c", "/?"}, "Prefix /"},
        DocsRow{{rule(kExact, "/foo")}, {"/foo"}, "Exact /foo"},
        DocsRow{{rule(kExact, "/foo")}, {"/bar"}, "404"},
        DocsRow{{rule(kExact, "/foo")}, {"/foo/"}, "404"},
        DocsRow{{rule(kExact, "/foo/")}, {"/foo"}, "404"},
        DocsRow{{rule(kPrefix, "/foo")}, {"/foo", "/foo/"}, "Prefix /foo"},
        DocsRow{{rule(kPrefix, "/foo/")}, {"/foo", "/foo/"}, "Prefix /foo/"},
        DocsRow{{rule(kPrefix, "/aaa/bb")}, {"/aaa/bbb"}, "404"},
        DocsRow{{rule(kPrefix, "/aaa/bbb")}, {"/aaa/bbb"}, "Prefix /aaa/bbb"},
        DocsRow{{rule(kPrefix, "/aaa/bbb/")}, {"/aaa/bbb"}, "Prefix /aaa/bbb/"},
        DocsRow{{rule(kPrefix, "/aaa/bbb")}, {"/aaa/bbb/"}, "Prefix /aaa/bbb"},
        DocsRow{{rule(kPrefix, "/aaa/bbb")}, {"/aaa/bbb/ccc"}, "Prefix /aaa/bbb"},
        DocsRow{{rule(kPrefix, "/aaa/bbb")}, {"/aaa/bbbxyz"}, "404"},
        DocsRow{{rule(kPrefix, "/"), rule(kPrefix, "/aaa")}, {"/aaa/ccc"}, "Prefix /aaa"},
        DocsRow{{rule(kPrefix, "/"), rule(kPrefix, "/aaa"), rule(kPrefix, "/aaa/bbb")},
                {"/aaa/bbb"},
                "Prefix /aaa/bbb"},
        DocsRow{{rule(kPrefix, "/"), rule(kPrefix, "/aaa"), rule(kPrefix, "/aaa/bbb")},
                {"/ccc"},
                "Prefix /"},
        DocsRow{{rule(kPrefix, "/aaa")}, {"/ccc"}, "default (default)"},
        DocsRow{{rule(kPrefix, "/foo"), rule(kExact, "/foo")}, {"/foo"}, "Exact /foo"}));

// ---- precedence details ----

INSTANTIATE_TEST_SUITE_P(
    Precedence, DocsTable,
    ::testing::Values(
        // A Prefix rule's trailing slash does not make it longer: Exact /foo still wins on /foo.
        DocsRow{{rule(kPrefix, "/foo/"), rule(kExact, "/foo")}, {"/foo"}, "Exact /foo"},
        DocsRow{
            {rule(kPrefix, "/foo/"), rule(kExact, "/foo")}, {"/foo/", "/foo/x"}, "Prefix /foo/"},
        // Exact /foo/ is longer than Prefix /foo, and only matches itself.
        DocsRow{{rule(kPrefix, "/foo"), rule(kExact, "/foo/")}, {"/foo/"}, "Exact /foo/"},
        DocsRow{{rule(kPrefix, "/foo"), rule(kExact, "/foo/")}, {"/foo", "/foo/x"}, "Prefix /foo"},
        // An Exact rule never matches a subpath, however long.
        DocsRow{{rule(kExact, "/a"), rule(kPrefix, "/a/b")}, {"/a/b/c"}, "Prefix /a/b"},
        DocsRow{{rule(kExact, "/"), rule(kPrefix, "/")}, {"/"}, "Exact /"},
        DocsRow{{rule(kExact, "/"), rule(kPrefix, "/")}, {"/x"}, "Prefix /"},
        DocsRow{{rule(kExact, "/")}, {"/x"}, "404"},
        // ImplementationSpecific is Prefix.
        DocsRow{{rule(kImpl, "/img/")}, {"/img", "/img/", "/img/a.png"}, "Impl /img/"},
        DocsRow{{rule(kImpl, "/img")}, {"/imgs"}, "404"},
        // Case-sensitive.
        DocsRow{{rule(kPrefix, "/Foo")}, {"/foo", "/FOO"}, "404"},
        DocsRow{{rule(kPrefix, "/a/b"), rule(kPrefix, "/a/bc"), rule(kPrefix, "/a")},
                {"/a/bcd"},
                "Prefix /a"},
        DocsRow{{rule(kPrefix, "/a/b"), rule(kPrefix, "/a/bc"), rule(kPrefix, "/a")},
                {"/a/bc/d"},
                "Prefix /a/bc"}));

// ---- ingress-controller-conformance: path rules P1–P15 ----

struct ConformanceCase {
  const char* id;
  const char* host;
  const char* path;
  const char* expect;
};

class PathRulesConformance : public ::testing::TestWithParam<ConformanceCase> {
protected:
  static std::shared_ptr<const RouteTable> table() {
    static const auto kTable = RouteTable::compile(makeState({
        VirtualHost{"exact-path-rules", {rule(kExact, "/foo", "foo-exact")}, std::nullopt},
        VirtualHost{
            "prefix-path-rules",
            {rule(kPrefix, "/foo", "foo-prefix"), rule(kPrefix, "/aaa/bbb", "aaa-slash-bbb-prefix"),
             rule(kPrefix, "/aaa", "aaa-prefix")},
            std::nullopt},
        VirtualHost{"mixed-path-rules",
                    {rule(kPrefix, "/foo", "foo-prefix"), rule(kExact, "/foo", "foo-exact")},
                    std::nullopt},
        VirtualHost{"trailing-slash-path-rules",
                    {rule(kPrefix, "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
                     rule(kExact, "/foo/", "foo-slash-exact")},
                    std::nullopt},
    }));
    return kTable;
  }
};

TEST_P(PathRulesConformance, Case) {
  const ConformanceCase& c = GetParam();
  EXPECT_EQ(route(*table(), c.host, c.path), c.expect) << c.id;
}

INSTANTIATE_TEST_SUITE_P(
    IngressConformance, PathRulesConformance,
    ::testing::Values(
        ConformanceCase{"P1", "exact-path-rules", "/foo", "foo-exact"},
        ConformanceCase{"P2", "exact-path-rules", "/foo/", "404"},
        ConformanceCase{"P3", "exact-path-rules", "/FOO", "404"},
        ConformanceCase{"P4", "exact-path-rules", "/bar", "404"},
        ConformanceCase{"P5", "prefix-path-rules", "/foo", "foo-prefix"},
        ConformanceCase{"P6", "prefix-path-rules", "/foo/", "foo-prefix"},
        ConformanceCase{"P7", "prefix-path-rules", "/FOO", "404"},
        ConformanceCase{"P8", "prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"},
        ConformanceCase{"P9", "prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"},
        ConformanceCase{"P10", "prefix-path-rules", "/aaa/ccc", "aaa-prefix"},
        ConformanceCase{"P11", "prefix-path-rules", "/aaaccc", "404"},
        ConformanceCase{"P12", "mixed-path-rules", "/foo", "foo-exact"},
        ConformanceCase{"P13", "trailing-slash-path-rules", "/aaa/bbb",
                        "aaa-slash-bbb-slash-prefix"},
        ConformanceCase{"P14", "trailing-slash-path-rules", "/aaa/bbb/",
                        "aaa-slash-bbb-slash-prefix"},
        ConformanceCase{"P15", "trailing-slash-path-rules", "/foo", "404"},
        // Not in the suite, implied by it: the Exact /foo/ rule itself, and an unknown host.
        ConformanceCase{"P14b", "trailing-slash-path-rules", "/foo/", "foo-slash-exact"},
        ConformanceCase{"P0", "unknown-host", "/foo", "404"}),
    [](const auto& info) { return std::string(info.param.id); });

// ---- host rules H1–H6 and the Kubernetes docs host table ----

class HostRulesConformance : public ::testing::TestWithParam<ConformanceCase> {};

TEST_P(HostRulesConformance, Case) {
  auto table = RouteTable::compile(makeState({
      VirtualHost{"*.foo.com", {rule(kPrefix, "/", "wildcard-foo-com")}, std::nullopt},
      VirtualHost{"foo.bar.com", {rule(kPrefix, "/", "foo-bar-com")}, std::nullopt},
  }));
  const ConformanceCase& c = GetParam();
  EXPECT_EQ(route(*table, c.host, c.path), c.expect) << c.id;
}

INSTANTIATE_TEST_SUITE_P(
    IngressConformance, HostRulesConformance,
    ::testing::Values(ConformanceCase{"H1_H2", "foo.bar.com", "/", "foo-bar-com"},
                      ConformanceCase{"H3", "subdomain.bar.com", "/", "404"},
                      ConformanceCase{"H4", "bar.foo.com", "/", "wildcard-foo-com"},
                      ConformanceCase{"H5", "baz.bar.foo.com", "/", "404"},
                      ConformanceCase{"H6", "foo.com", "/", "404"},
                      // Edge cases of "exactly one extra, non-empty label".
                      ConformanceCase{"EmptyFirstLabel", ".foo.com", "/", "404"},
                      ConformanceCase{"NoDot", "foo", "/", "404"},
                      ConformanceCase{"TrailingDot", "bar.", "/", "404"},
                      ConformanceCase{"EmptyHost", "", "/", "404"}),
    [](const auto& info) { return std::string(info.param.id); });

// ---- default backend D1–D6: an Ingress with only a defaultBackend ----

TEST(DefaultBackendConformance, AnyHostAnyPath) {
  auto table = RouteTable::compile(makeState({}, "t/echo-service:8080"));
  for (const auto& [host, path] :
       std::vector<std::pair<std::string, std::string>>{{"my-host", "/"},
                                                        {"my-host", "/sub-path"},
                                                        {"some-host", "/"},
                                                        {"192.0.2.10", "/resource"},
                                                        {"some-host", "/resource"},
                                                        {"", "/resource"}}) {
    EXPECT_EQ(route(*table, host, path), "t/echo-service:8080 (default)") << host << path;
  }
}

// ---- host buckets: precedence and no fall-through ----

TEST(HostBuckets, ExactThenWildcardThenAnyWithoutFallThrough) {
  auto table = RouteTable::compile(makeState({
      VirtualHost{"", {rule(kPrefix, "/", "any")}, std::nullopt},
      VirtualHost{"*.example.com", {rule(kPrefix, "/wild", "wild")}, std::nullopt},
      VirtualHost{"api.example.com", {rule(kPrefix, "/api", "api")}, std::nullopt},
  }));
  EXPECT_EQ(route(*table, "api.example.com", "/api/x"), "api");
  // The exact bucket was chosen: neither the wildcard nor the host-less rules are tried.
  EXPECT_EQ(route(*table, "api.example.com", "/wild"), "404");
  EXPECT_EQ(route(*table, "api.example.com", "/"), "404");
  EXPECT_EQ(route(*table, "www.example.com", "/wild"), "wild");
  EXPECT_EQ(route(*table, "www.example.com", "/"), "404");
  // No bucket for the host: host-less rules.
  EXPECT_EQ(route(*table, "a.b.example.com", "/wild"), "any");
  EXPECT_EQ(route(*table, "example.com", "/"), "any");
  EXPECT_EQ(route(*table, "other.org", "/x"), "any");
}

TEST(HostBuckets, FallbackIsHostDefaultThenGlobalDefault) {
  auto table = RouteTable::compile(makeState(
      {
          VirtualHost{"own.test", {rule(kPrefix, "/p", "p")}, "own-default"},
          VirtualHost{"plain.test", {rule(kPrefix, "/p", "p")}, std::nullopt},
          VirtualHost{"*.wild.test", {}, "wild-default"},
          VirtualHost{"", {rule(kExact, "/any", "any")}, std::nullopt},
      },
      "global"));
  EXPECT_EQ(route(*table, "own.test", "/p"), "p");
  EXPECT_EQ(route(*table, "own.test", "/q"), "own-default (default)");
  EXPECT_EQ(route(*table, "plain.test", "/q"), "global (default)");
  EXPECT_EQ(route(*table, "x.wild.test", "/anything"), "wild-default (default)");
  EXPECT_EQ(route(*table, "elsewhere.test", "/any"), "any");
  EXPECT_EQ(route(*table, "elsewhere.test", "/other"), "global (default)");
}

TEST(HostBuckets, NoHostlessRulesMeansGlobalDefaultOr404) {
  auto with_default = RouteTable::compile(
      makeState({VirtualHost{"a.test", {rule(kPrefix, "/", "a")}, std::nullopt}}, "global"));
  EXPECT_EQ(route(*with_default, "b.test", "/"), "global (default)");
  auto without = RouteTable::compile(
      makeState({VirtualHost{"a.test", {rule(kPrefix, "/", "a")}, std::nullopt}}));
  EXPECT_EQ(route(*without, "b.test", "/"), "404");
  auto empty = RouteTable::compile(DesiredState{});
  EXPECT_EQ(route(*empty, "b.test", "/"), "404");
  EXPECT_EQ(empty->routeLabels(), std::vector<std::string>{"none"});
}

TEST(HostBuckets, HostsAreCaseInsensitiveAtCompile) {
  auto table = RouteTable::compile(
      makeState({VirtualHost{"Mixed.Example.COM", {rule(kPrefix, "/", "m")}, std::nullopt},
                 VirtualHost{"*.Wild.Example.com", {rule(kPrefix, "/", "w")}, std::nullopt}}));
  EXPECT_EQ(route(*table, "mixed.example.com", "/"), "m");
  EXPECT_EQ(route(*table, "x.wild.example.com", "/"), "w");
}

// ---- indexes, labels, generation ----

TEST(RouteTableMeta, ClusterIndexesLabelsAndGeneration) {
  DesiredState s = makeState(
      {
          VirtualHost{"", {rule(kPrefix, "/", "c/any:80")}, std::nullopt},
          VirtualHost{
              "a.test", {rule(kExact, "/x", "c/x:80"), rule(kImpl, "/y/", "c/y:http")}, "c/d:80"},
          VirtualHost{"b.test", {}, "c/d:80"},
      },
      "c/g:80");
  s.generation = 42;
  auto table = RouteTable::compile(s);
  EXPECT_EQ(table->generation(), 42u);
  EXPECT_THAT(table->clusterNames(),
              ElementsAre("c/any:80", "c/d:80", "c/g:80", "c/x:80", "c/y:http"));
  EXPECT_THAT(table->routeLabels(),
              ElementsAre("none", "default:c/g:80", "*|/|Prefix", "a.test|/x|Exact",
                          "a.test|/y/|ImplementationSpecific", "default:c/d:80"));
  Match m = table->match("a.test", "/y/z");
  EXPECT_EQ(m.cluster, 4u);
  EXPECT_EQ(table->routeLabels()[m.route], "a.test|/y/|ImplementationSpecific");
  EXPECT_FALSE(m.via_default);
  m = table->match("b.test", "/");
  EXPECT_EQ(m.cluster, 1u);
  EXPECT_EQ(table->routeLabels()[m.route], "default:c/d:80");  // one label per default cluster
  EXPECT_TRUE(m.via_default);
  m = table->match("a.test", "/nope");
  EXPECT_EQ(table->routeLabels()[m.route], "default:c/d:80");
  m = table->match("zzz", "/");
  EXPECT_EQ(table->routeLabels()[m.route], "*|/|Prefix");
}

TEST(RouteTableMeta, UnknownClusterIs404ButKeepsItsRoute) {
  DesiredState s;
  s.hosts.push_back(VirtualHost{"a.test", {rule(kPrefix, "/", "ghost")}, std::nullopt});
  auto table = RouteTable::compile(s);
  const Match m = table->match("a.test", "/");
  EXPECT_EQ(m.cluster, kNoCluster);
  EXPECT_EQ(table->routeLabels()[m.route], "a.test|/|Prefix");
}

TEST(RouteTableMeta, EmptyPathIsTreatedAsRoot) {
  auto table =
      RouteTable::compile(makeState({VirtualHost{"", {rule(kExact, "/", "root")}, std::nullopt}}));
  EXPECT_EQ(route(*table, "a", ""), "root");
}

TEST(RouteTableMeta, ManyRulesLongestFirst) {
  std::vector<PathRule> rules;
  for (int i = 0; i < 200; ++i) {
    rules.push_back(rule(i % 2 ? kExact : kPrefix, "/r" + std::to_string(i)));
  }
  rules.push_back(rule(kPrefix, "/r1/deep"));
  auto table = RouteTable::compile(makeState({VirtualHost{"h", rules, std::nullopt}}));
  EXPECT_EQ(route(*table, "h", "/r10/x"), "Prefix /r10");
  EXPECT_EQ(route(*table, "h", "/r11"), "Exact /r11");
  EXPECT_EQ(route(*table, "h", "/r11/x"), "404");
  EXPECT_EQ(route(*table, "h", "/r1/deep/x"), "Prefix /r1/deep");
  EXPECT_EQ(route(*table, "h", "/r1/x"), "404");  // /r1 is Exact
  EXPECT_EQ(route(*table, "h", "/r198/x/y"), "Prefix /r198");
}

}  // namespace
}  // namespace sluice::router
