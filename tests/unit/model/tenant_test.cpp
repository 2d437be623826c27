// Multi-tenant safety in translate(): with the API source, endpoint addresses that reach the
// agent's own node (loopback, link-local, unspecified, the node's addresses) are refused unless
// --allow-endpoint-cidrs lists them; with --host-ownership=first, a host belongs to the namespace
// of its oldest Ingress.
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/cidr.hpp"
#include "model/translate.hpp"
#include "support/result.hpp"
#include "translate_support.hpp"

namespace sluice::model {
namespace {

using test::dump;
using test::kOurClass;
using test::pathLine;
using test::pathsIngress;
using test::storeFrom;
using test::webService;
using ::testing::IsEmpty;

// A `rules:` entry: `host`, Prefix `path` → web:80.
std::string hostRule(const std::string& host, const std::string& path) {
  return "  - host: " + host + "\n    http:\n      paths:\n" + pathLine(path, "Prefix");
}

// ---- endpoint safety ----

// An EndpointSlice of Service t/web (port 8080) with one ready endpoint per address.
std::string webSlice(const std::string& name, const std::string& type,
                     const std::vector<std::string>& addresses) {
  std::string endpoints;
  for (const std::string& a : addresses) {
    endpoints += "- {addresses: [\"" + a + "\"]}\n";
  }
  return "\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: " + name +
         ", namespace: t, labels: {kubernetes.io/service-name: web}}\naddressType: " + type +
         "\nports: [{port: 8080}]\nendpoints:\n" + endpoints;
}

// Service t/web (its slice web-1 holds 10.0.0.1), routed for a.test, plus `slices`.
std::string routedWeb(const std::string& slices) {
  return std::string(kOurClass) + webService() +
         pathsIngress("t", "i", "", hostRule("a.test", "/")) + slices;
}

// The options the agent uses with the API source.
TranslateOptions apiMode(const std::string& allowed = "",
                         std::vector<std::string> node_addresses = {}) {
  TranslateOptions o;
  o.restrict_endpoints = true;
  Result<net::CidrSet> set = net::parseCidrs(allowed);
  EXPECT_OK(set);
  if (set) {
    o.allowed_endpoints = std::move(*set);
  }
  o.node_addresses = std::move(node_addresses);
  return o;
}

constexpr const char* kRoute = R"(host "a.test"
  Prefix / -> t/web:80 (t/i)
)";

std::string refused(const std::string& slice, const std::string& address, const std::string& why) {
  return "warning EndpointSlice t/" + slice + ": endpoint " + address +
         " of Service t/web refused: " + why + "; --allow-endpoint-cidrs can allow it\n";
}

constexpr const char* kLoopback =
    "a loopback address (127.0.0.0/8, ::1), which reaches the agent's own node";
constexpr const char* kLinkLocal =
    "a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services answer";
constexpr const char* kUnspecified =
    "an unspecified address (0.0.0.0/8, ::), which reaches the agent's own node";
constexpr const char* kNode = "an address of the agent's own node";

TEST(TenantEndpoints, RefusesEachIpv4Class) {
  const std::string yaml =
      routedWeb(webSlice("web-2", "IPv4",
                         {"127.0.0.1", "127.200.0.9", "169.254.169.254", "0.0.0.0", "192.168.1.5",
                          "10.0.0.2", "169.253.255.255", "128.0.0.1"}));
  DesiredState s = translate(storeFrom(yaml), apiMode("", {"192.168.1.5", "fd00::5"}));
  EXPECT_EQ(dump(s), std::string(kRoute) +
                         "cluster t/web:80: 10.0.0.1:8080 10.0.0.2:8080 128.0.0.1:8080 "
                         "169.253.255.255:8080\n" +
                         refused("web-2", "127.0.0.1", kLoopback) +
                         refused("web-2", "127.200.0.9", kLoopback) +
                         refused("web-2", "169.254.169.254", kLinkLocal) +
                         refused("web-2", "0.0.0.0", kUnspecified) +
                         refused("web-2", "192.168.1.5", kNode));
  EXPECT_EQ(s.refused_endpoints, 5u);
}

TEST(TenantEndpoints, RefusesEachIpv6ClassAndIpv4MappedForms) {
  const std::string yaml =
      routedWeb(webSlice("web-6", "IPv6",
                         {"::1", "fe80::1", "febf::2", "::", "::ffff:127.0.0.1",
                          "::ffff:169.254.169.254", "fd00::5", "fd00::1", "fec0::1"}));
  DesiredState s = translate(storeFrom(yaml), apiMode("", {"192.168.1.5", "fd00::5"}));
  EXPECT_EQ(dump(s),
            std::string(kRoute) + "cluster t/web:80: 10.0.0.1:8080 fd00::1:8080 fec0::1:8080\n" +
                refused("web-6", "::1", kLoopback) + refused("web-6", "fe80::1", kLinkLocal) +
                refused("web-6", "febf::2", kLinkLocal) + refused("web-6", "::", kUnspecified) +
                refused("web-6", "::ffff:127.0.0.1", kLoopback) +
                refused("web-6", "::ffff:169.254.169.254", kLinkLocal) +
                refused("web-6", "fd00::5", kNode));
  EXPECT_EQ(s.refused_endpoints, 7u);
}

TEST(TenantEndpoints, NodeAddressesCompareAsAddresses) {
  // The node's addresses come as getifaddrs texts; a slice may spell one differently.
  const std::string yaml =
      routedWeb(webSlice("web-6", "IPv6", {"FD00:0:0::5", "::ffff:192.168.1.5", "fd00::6"}));
  DesiredState s = translate(storeFrom(yaml), apiMode("", {"192.168.1.5", "fd00::5", "junk"}));
  EXPECT_EQ(dump(s), std::string(kRoute) + "cluster t/web:80: 10.0.0.1:8080 fd00::6:8080\n" +
                         refused("web-6", "FD00:0:0::5", kNode) +
                         refused("web-6", "::ffff:192.168.1.5", kNode));
}

TEST(TenantEndpoints, AllowListAdmitsWhatItCovers) {
  const std::string yaml =
      routedWeb(webSlice("web-2", "IPv4", {"127.0.0.1", "169.254.169.254", "192.168.1.5"}) +
                webSlice("web-6", "IPv6", {"::1", "fe80::1", "::ffff:127.0.0.2"}));
  // 127.0.0.0/8 covers its IPv4-mapped form too, but not ::1; one node address is allowed.
  DesiredState s =
      translate(storeFrom(yaml), apiMode("127.0.0.0/8, fe80::/64, 192.168.1.5", {"192.168.1.5"}));
  EXPECT_EQ(dump(s), std::string(kRoute) +
                         "cluster t/web:80: 10.0.0.1:8080 127.0.0.1:8080 192.168.1.5:8080 "
                         "::ffff:127.0.0.2:8080 fe80::1:8080\n" +
                         refused("web-2", "169.254.169.254", kLinkLocal) +
                         refused("web-6", "::1", kLoopback));
  EXPECT_EQ(s.refused_endpoints, 2u);
  // Everything, for a lab where backends run on the node.
  DesiredState all = translate(storeFrom(yaml), apiMode("0.0.0.0/0,::/0", {"192.168.1.5"}));
  EXPECT_THAT(all.warnings, IsEmpty());
  EXPECT_EQ(all.refused_endpoints, 0u);
  ASSERT_EQ(all.clusters.size(), 1u);
  EXPECT_EQ(all.clusters[0].endpoints.size(), 7u);
}

TEST(TenantEndpoints, ManifestModeAllowsEverything) {
  const std::string yaml =
      routedWeb(webSlice("web-2", "IPv4", {"127.0.0.1", "169.254.169.254", "0.0.0.0"}) +
                webSlice("web-6", "IPv6", {"::1", "fe80::1", "::"}));
  TranslateOptions manifests = apiMode("", {"10.0.0.1"});
  manifests.restrict_endpoints = false;
  DesiredState s = translate(storeFrom(yaml), manifests);
  EXPECT_EQ(dump(s), std::string(kRoute) +
                         "cluster t/web:80: 0.0.0.0:8080 10.0.0.1:8080 127.0.0.1:8080 "
                         "169.254.169.254:8080 :::8080 ::1:8080 fe80::1:8080\n");
  EXPECT_EQ(s.refused_endpoints, 0u);
  // The default options are manifest mode's.
  EXPECT_EQ(dump(translate(storeFrom(yaml), {})), dump(s));
}

TEST(TenantEndpoints, CountsEachAddressOfEachSliceOnceAndOnlyForUsedServices) {
  // Service u/web has a loopback endpoint too, but no Ingress routes to it.
  const std::string yaml =
      routedWeb(webSlice("web-2", "IPv4", {"127.0.0.1", "127.0.0.1", "10.0.0.1"}) +
                webSlice("web-3", "IPv4", {"127.0.0.1"})) +
      webService("u") + R"(
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-9, namespace: u, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.1]}]
ports: [{port: 8080}]
)";
  DesiredState s = translate(storeFrom(yaml), apiMode());
  EXPECT_EQ(dump(s), std::string(kRoute) + "cluster t/web:80: 10.0.0.1:8080\n" +
                         refused("web-2", "127.0.0.1", kLoopback) +
                         refused("web-3", "127.0.0.1", kLoopback));
  EXPECT_EQ(s.refused_endpoints, 2u);
}

TEST(TenantEndpoints, EveryEndpointRefusedLeavesTheClusterEmpty) {
  const std::string yaml = std::string(kOurClass) + R"(
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: t}
spec: {ports: [{port: 80}]}
)" + webSlice("web-2", "IPv4", {"127.0.0.1"}) +
                           pathsIngress("t", "i", "", hostRule("a.test", "/"));
  DesiredState s = translate(storeFrom(yaml), apiMode());
  ASSERT_EQ(s.clusters.size(), 1u);
  EXPECT_THAT(s.clusters[0].endpoints, IsEmpty());  // 503, as for a Service without endpoints
  EXPECT_EQ(s.refused_endpoints, 1u);
}

// ---- host ownership ----

TranslateOptions firstOwner() {
  TranslateOptions o;
  o.host_ownership = HostOwnership::kFirst;
  return o;
}

// t owns a.test (t/old is the oldest with a rule for it); u/intruder, older than t/newer, also
// wants a.test and is the only one that wants b.test.
std::string tenants() {
  return std::string(kOurClass) + webService() + webService("u") +
         pathsIngress("t", "old", "2024-01-01T00:00:00Z", hostRule("a.test", "/")) +
         pathsIngress("u", "intruder", "2024-02-01T00:00:00Z",
                      hostRule("A.Test", "/admin") + hostRule("b.test", "/")) +
         pathsIngress("t", "newer", "2024-03-01T00:00:00Z", hostRule("a.test", "/more"));
}

TEST(TenantHosts, FirstGivesAHostToTheNamespaceOfItsOldestIngress) {
  DesiredState s = translate(storeFrom(tenants()), firstOwner());
  EXPECT_EQ(dump(s), R"(host "a.test"
  Prefix / -> t/web:80 (t/old)
  Prefix /more -> t/web:80 (t/newer)
host "b.test"
  Prefix / -> u/web:80 (u/intruder)
cluster t/web:80: 10.0.0.1:8080
cluster u/web:80: 10.0.0.1:8080
warning Ingress u/intruder: spec.rules[0] refused: host "a.test" belongs to namespace t (its )"
                     R"(oldest Ingress t/old); --host-ownership=first
)");
}

TEST(TenantHosts, SharedIsTheDefaultAndMergesEveryNamespace) {
  const std::string merged = R"(host "a.test"
  Prefix / -> t/web:80 (t/old)
  Prefix /admin -> u/web:80 (u/intruder)
  Prefix /more -> t/web:80 (t/newer)
host "b.test"
  Prefix / -> u/web:80 (u/intruder)
cluster t/web:80: 10.0.0.1:8080
cluster u/web:80: 10.0.0.1:8080
)";
  EXPECT_EQ(dump(translate(storeFrom(tenants()), {})), merged);
  TranslateOptions shared;
  shared.host_ownership = HostOwnership::kShared;
  EXPECT_EQ(dump(translate(storeFrom(tenants()), shared)), merged);
}

TEST(TenantHosts, TiesGoToTheNamespaceThenTheNameThatSortsFirst) {
  const std::string base = std::string(kOurClass) + webService() + webService("u");
  const auto ownerOf = [](const DesiredState& s) {
    return s.hosts.size() == 1 && !s.hosts[0].paths.empty() ? s.hosts[0].paths[0].ingress
                                                            : std::string("?");
  };
  // The same instant, written in two zones: namespace t sorts before u.
  DesiredState by_ns = translate(
      storeFrom(base + pathsIngress("u", "a", "2024-01-01T00:00:00Z", hostRule("a.test", "/")) +
                pathsIngress("t", "z", "2024-01-01T01:00:00+01:00", hostRule("a.test", "/t"))),
      firstOwner());
  EXPECT_EQ(ownerOf(by_ns), "t/z");
  ASSERT_EQ(by_ns.warnings.size(), 1u);
  EXPECT_EQ(by_ns.warnings[0].object, "Ingress u/a");
  // One second older wins over the namespace order.
  DesiredState by_time = translate(
      storeFrom(base + pathsIngress("u", "a", "2023-12-31T23:59:59Z", hostRule("a.test", "/")) +
                pathsIngress("t", "z", "2024-01-01T00:00:00Z", hostRule("a.test", "/t"))),
      firstOwner());
  EXPECT_EQ(ownerOf(by_time), "u/a");
  // No timestamps: namespace, then name; the owner's namespace keeps every one of its Ingresses.
  DesiredState by_name =
      translate(storeFrom(base + pathsIngress("u", "a", "", hostRule("a.test", "/u")) +
                          pathsIngress("t", "b", "", hostRule("a.test", "/b")) +
                          pathsIngress("t", "a", "", hostRule("a.test", "/a"))),
                firstOwner());
  EXPECT_EQ(dump(by_name, false), R"(host "a.test"
  Prefix /a -> t/web:80 (t/a)
  Prefix /b -> t/web:80 (t/b)
cluster t/web:80: 10.0.0.1:8080
)");
  ASSERT_EQ(by_name.warnings.size(), 1u);
  EXPECT_EQ(by_name.warnings[0].message,
            "spec.rules[0] refused: host \"a.test\" belongs to namespace t (its oldest Ingress "
            "t/a); --host-ownership=first");
}

TEST(TenantHosts, WildcardsAndTheAnyHostRuleHaveOwnersOfTheirOwn) {
  const std::string yaml = std::string(kOurClass) + webService() + webService("u") +
                           pathsIngress("t", "a", "2024-01-01T00:00:00Z",
                                        hostRule("a.test", "/") + hostRule("'*.a.test'", "/")) +
                           pathsIngress("u", "b", "2024-02-01T00:00:00Z",
                                        hostRule("'*.a.test'", "/u") + hostRule("x.a.test", "/") +
                                            "  - http:\n      paths:\n" + pathLine("/", "Prefix"));
  DesiredState s = translate(storeFrom(yaml), firstOwner());
  EXPECT_EQ(dump(s), R"(host ""
  Prefix / -> u/web:80 (u/b)
host "*.a.test"
  Prefix / -> t/web:80 (t/a)
host "a.test"
  Prefix / -> t/web:80 (t/a)
host "x.a.test"
  Prefix / -> u/web:80 (u/b)
cluster t/web:80: 10.0.0.1:8080
cluster u/web:80: 10.0.0.1:8080
warning Ingress u/b: spec.rules[0] refused: host "*.a.test" belongs to namespace t (its oldest )"
                     R"(Ingress t/a); --host-ownership=first
)");
}

TEST(TenantHosts, ARefusedRuleBringsNoHostDefaultBackend) {
  const std::string yaml = std::string(kOurClass) + webService() + webService("u") +
                           pathsIngress("t", "a", "2024-01-01T00:00:00Z", hostRule("a.test", "/")) +
                           R"(
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b, namespace: u, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  ingressClassName: sluice
  defaultBackend: {service: {name: web, port: {number: 80}}}
)" + "  rules:\n" + hostRule("a.test", "/u") +
                           hostRule("b.test", "/");
  DesiredState s = translate(storeFrom(yaml), firstOwner());
  // u/b's defaultBackend serves its own host and, as the oldest one, unmatched hosts; a.test
  // stays t's alone.
  EXPECT_EQ(dump(s, false), R"(default u/web:80
host "a.test"
  Prefix / -> t/web:80 (t/a)
host "b.test" default u/web:80
  Prefix / -> u/web:80 (u/b)
cluster t/web:80: 10.0.0.1:8080
cluster u/web:80: 10.0.0.1:8080
)");
}

}  // namespace
}  // namespace sluice::model
