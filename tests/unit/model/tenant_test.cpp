// Multi-tenant safety in translate(): with the API source, endpoint addresses that reach the
// agent's own node (loopback, link-local, unspecified, the node's addresses) are refused unless
// --allow-endpoint-cidrs lists them.
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

}  // namespace
}  // namespace sluice::model
