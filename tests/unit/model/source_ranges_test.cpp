// sluice.dev/allow-source-ranges and deny-source-ranges: per host from Ingresses (enforced by the
// agent, 403), per TCP route from the route's Service (enforced in XDP), bad entries warned and
// skipped.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "translate_support.hpp"

namespace sluice::model::test {
namespace {

using ::testing::IsEmpty;

std::string annotated(const std::string& name, const std::string& created,
                      const std::string& annotations, const std::string& host) {
  return "\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name +
         "\n  namespace: t\n  creationTimestamp: \"" + created + "\"\n  annotations:\n" +
         annotations + "spec:\n  ingressClassName: sluice\n  rules:\n  - host: " + host +
         "\n    http:\n      paths:\n" + pathLine("/", "Prefix");
}

const VirtualHost& host(const DesiredState& s, const std::string& name) {
  for (const VirtualHost& h : s.hosts) {
    if (h.host == name) {
      return h;
    }
  }
  ADD_FAILURE() << "no host " << name;
  static const VirtualHost none;
  return none;
}

std::vector<std::string> warnings(const DesiredState& s) {
  std::vector<std::string> out;
  for (const Warning& w : s.warnings) {
    out.push_back(w.object + ": " + w.message);
  }
  return out;
}

TEST(SourceRanges, PermitsFollowsDenyThenAllow) {
  SourceRanges r;
  EXPECT_TRUE(r.empty());
  EXPECT_TRUE(r.permits("192.0.2.1"));
  r.allow = *net::parseCidrs("10.0.0.0/8, 2001:db8::/32");
  r.allow_listed = true;
  r.deny = *net::parseCidrs("10.1.0.0/16");
  EXPECT_TRUE(r.permits("10.2.3.4"));
  EXPECT_TRUE(r.permits("::ffff:10.2.3.4"));
  EXPECT_TRUE(r.permits("2001:db8::1"));
  EXPECT_FALSE(r.permits("10.1.3.4")) << "deny wins inside an allow range";
  EXPECT_FALSE(r.permits("192.0.2.1")) << "not on the allow list";
  EXPECT_FALSE(r.permits("not-an-address"));
  SourceRanges deny_only;
  deny_only.deny = *net::parseCidrs("127.0.0.1");
  EXPECT_FALSE(deny_only.permits("127.0.0.1"));
  EXPECT_TRUE(deny_only.permits("127.0.0.2"));
}

TEST(SourceRanges, IngressAnnotationsApplyToItsHosts) {
  const auto store = storeFrom(
      std::string(kOurClass) + webService() +
      annotated("a", "2024-01-01T00:00:00Z",
                "    sluice.dev/allow-source-ranges: \" 10.0.0.0/8 ,"
                "192.0.2.7\"\n"
                "    sluice.dev/deny-source-ranges: 10.9.0.0/16\n",
                "a.example.com") +
      pathsIngress("t", "b", "2024-01-02T00:00:00Z",
                   "  - host: b.example.com\n    http:\n      paths:\n" + pathLine("/", "Prefix")));
  const DesiredState s = translate(store, {});
  EXPECT_THAT(warnings(s), IsEmpty());
  const SourceRanges& a = host(s, "a.example.com").sources;
  EXPECT_TRUE(a.allow_listed);
  EXPECT_EQ(a.allow.text(), "10.0.0.0/8,192.0.2.7/32");
  EXPECT_EQ(a.deny.text(), "10.9.0.0/16");
  EXPECT_TRUE(host(s, "b.example.com").sources.empty());
}

TEST(SourceRanges, BadEntriesAreWarnedAndTheRestApplied) {
  const auto store =
      storeFrom(std::string(kOurClass) + webService() +
                annotated("a", "2024-01-01T00:00:00Z",
                          "    sluice.dev/allow-source-ranges: \"10.0.0.1/8,,bogus,127.0.0.1\"\n"
                          "    sluice.dev/deny-source-ranges: \"300.1.1.1\"\n",
                          "a.example.com"));
  const DesiredState s = translate(store, {});
  const SourceRanges& a = host(s, "a.example.com").sources;
  EXPECT_EQ(a.allow.text(), "127.0.0.1/32");
  EXPECT_TRUE(a.deny.empty());
  const auto w = warnings(s);
  ASSERT_EQ(w.size(), 3U) << ::testing::PrintToString(w);
  for (const std::string& line : w) {
    EXPECT_THAT(line, ::testing::StartsWith("Ingress t/a: annotation sluice.dev/"));
    EXPECT_THAT(line, ::testing::EndsWith("; entry skipped"));
  }
  EXPECT_THAT(w[0], ::testing::HasSubstr("10.0.0.1/8"));
  EXPECT_THAT(w[1], ::testing::HasSubstr("bogus"));
  EXPECT_THAT(w[2], ::testing::HasSubstr("300.1.1.1"));
}

TEST(SourceRanges, AnAllowListWithNothingValidAllowsNobody) {
  const auto store =
      storeFrom(std::string(kOurClass) + webService() +
                annotated("a", "2024-01-01T00:00:00Z", "    sluice.dev/allow-source-ranges: nope\n",
                          "a.example.com") +
                annotated("e", "2024-01-01T00:00:00Z",
                          "    sluice.dev/allow-source-ranges: \" \"\n", "e.example.com"));
  const DesiredState s = translate(store, {});
  const SourceRanges& a = host(s, "a.example.com").sources;
  EXPECT_TRUE(a.allow_listed) << "fail closed, not open";
  EXPECT_FALSE(a.permits("127.0.0.1"));
  EXPECT_THAT(warnings(s), ::testing::Contains(::testing::HasSubstr("no client may connect")));
  EXPECT_TRUE(host(s, "e.example.com").sources.empty()) << "an empty value sets nothing";
}

TEST(SourceRanges, TheOldestIngressOfAHostSetsItsRanges) {
  const auto store = storeFrom(
      std::string(kOurClass) + webService() +
      annotated("new", "2024-02-01T00:00:00Z", "    sluice.dev/deny-source-ranges: 10.0.0.0/8\n",
                "shared.example.com") +
      annotated("old", "2024-01-01T00:00:00Z", "    sluice.dev/deny-source-ranges: 10.1.0.0/16\n",
                "shared.example.com"));
  const DesiredState s = translate(store, {});
  EXPECT_EQ(host(s, "shared.example.com").sources.deny.text(), "10.1.0.0/16");
  EXPECT_THAT(warnings(s),
              ::testing::Contains("Ingress t/new: source ranges for host \"shared.example.com\" "
                                  "ignored: Ingress t/old (older) sets them"));
}

TEST(SourceRanges, TcpRoutesTakeTheirServicesAnnotations) {
  const auto store = storeFrom(R"(
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: t
  annotations:
    sluice.dev/allow-source-ranges: 10.0.0.0/8,fd00::/8
    sluice.dev/deny-source-ranges: 10.6.0.0/16,x
spec: {ports: [{port: 5432}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: sluice-tcp-services, namespace: sluice-system}
data:
  "5432": t/db:5432
  "9000": t/web:80
)" + webService());
  const DesiredState s = translate(store, {});
  ASSERT_EQ(s.tcp_routes.size(), 2U);
  EXPECT_EQ(s.tcp_routes[0].port, 5432);
  EXPECT_EQ(s.tcp_routes[0].sources.allow.text(), "10.0.0.0/8,fd00::/8");
  EXPECT_EQ(s.tcp_routes[0].sources.deny.text(), "10.6.0.0/16");
  EXPECT_TRUE(s.tcp_routes[1].sources.empty());
  EXPECT_THAT(warnings(s), ::testing::ElementsAre(::testing::StartsWith(
                               "Service t/db: annotation sluice.dev/deny-source-ranges: ")));
}

TEST(SourceRanges, PassthroughHostsRecordTheirIngresssRanges) {
  const auto store = storeFrom(std::string(kOurClass) + webService() +
                               annotated("p", "2024-01-01T00:00:00Z",
                                         "    sluice.dev/ssl-passthrough: \"true\"\n"
                                         "    sluice.dev/allow-source-ranges: 192.0.2.0/24\n",
                                         "p.example.com"));
  const DesiredState s = translate(store, {});
  ASSERT_EQ(s.passthrough.size(), 1U);
  EXPECT_EQ(s.passthrough[0].sources.allow.text(), "192.0.2.0/24");
}

}  // namespace
}  // namespace sluice::model::test
