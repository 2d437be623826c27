#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "k8s/manifest.hpp"
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
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// An Ingress with one rule: `host`, Prefix / → `service`:80; plus extra metadata/spec lines.
std::string simpleIngress(const std::string& name, const std::string& host,
                          const std::string& extra_spec = "", const std::string& extra_meta = "",
                          const std::string& service = "web") {
  return R"(
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: )" +
         name + R"(
  namespace: t
)" + extra_meta +
         R"(spec:
)" + extra_spec +
         R"(  rules:
  - host: )" +
         host + R"(
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: )" +
         service + R"(, port: {number: 80}}}}
)";
}

std::vector<std::string> hostsOf(const DesiredState& s) {
  std::vector<std::string> out;
  for (const auto& h : s.hosts) {
    out.push_back(h.host);
  }
  return out;
}

// ---- class selection ----

TEST(TranslateClass, IngressClassNameAnnotationAndOtherClasses) {
  const std::string yaml =
      std::string(kOurClass) + R"(
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: internal}
spec: {controller: sluice.dev/ingress}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
)" + webService() +
      simpleIngress("by-name", "by-name.test", "  ingressClassName: sluice\n") +
      simpleIngress("by-other-class-of-ours", "internal.test", "  ingressClassName: internal\n") +
      simpleIngress("other", "other.test", "  ingressClassName: nginx\n", "", "missing") +
      simpleIngress("ghost", "ghost.test", "  ingressClassName: ghost\n", "", "missing") +
      simpleIngress("legacy", "legacy.test", "",
                    "  annotations: {kubernetes.io/ingress.class: sluice}\n") +
      simpleIngress("legacy-other", "legacy-other.test", "",
                    "  annotations: {kubernetes.io/ingress.class: nginx}\n", "missing") +
      simpleIngress("name-beats-annotation", "name-wins.test", "  ingressClassName: nginx\n",
                    "  annotations: {kubernetes.io/ingress.class: sluice}\n", "missing") +
      simpleIngress("name-beats-annotation-2", "name-wins-2.test", "  ingressClassName: sluice\n",
                    "  annotations: {kubernetes.io/ingress.class: nginx}\n") +
      simpleIngress("classless", "classless.test", "", "", "missing");
  DesiredState s = translate(storeFrom(yaml), TranslateOptions{});
  EXPECT_THAT(hostsOf(s),
              ElementsAre("by-name.test", "internal.test", "legacy.test", "name-wins-2.test"));
  // Other classes are ignored entirely: their missing Services produce no warnings.
  EXPECT_THAT(s.warnings, IsEmpty()) << dump(s);
  EXPECT_THAT(s.clusters, ElementsAre(::testing::Field(&Cluster::name, "t/web:80")));
}

TEST(TranslateClass, DefaultClassClaimsClasslessIngresses) {
  const std::string ours_default = R"(
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: sluice
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: sluice.dev/ingress}
)";
  const std::string ingresses =
      webService() + simpleIngress("classless", "classless.test") +
      simpleIngress("legacy-other", "legacy-other.test", "",
                    "  annotations: {kubernetes.io/ingress.class: nginx}\n");
  DesiredState s = translate(storeFrom(ours_default + ingresses), TranslateOptions{});
  EXPECT_THAT(hostsOf(s), ElementsAre("classless.test"));

  // Not default (or default, but another controller's) → class-less Ingresses are not ours.
  DesiredState not_default = translate(storeFrom(std::string(kOurClass) + ingresses), {});
  EXPECT_THAT(not_default.hosts, IsEmpty());
  const std::string other_default = R"(
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
)";
  EXPECT_THAT(translate(storeFrom(other_default + ingresses), {}).hosts, IsEmpty());
  // The annotation must be exactly "true".
  std::string almost = ours_default;
  almost.replace(almost.find("\"true\""), 6, "\"True\"");
  EXPECT_THAT(translate(storeFrom(almost + ingresses), {}).hosts, IsEmpty());
}

TEST(TranslateClass, MissingOwnIngressClassWarns) {
  DesiredState s = translate(
      storeFrom(webService() + simpleIngress("web", "a.test", "  ingressClassName: sluice\n")),
      TranslateOptions{});
  EXPECT_THAT(s.hosts, IsEmpty());
  EXPECT_EQ(dump(s),
            "warning Ingress t/web: IngressClass sluice not found; Ingress ignored until "
            "it exists with controller sluice.dev/ingress\n");
}

TEST(TranslateClass, OptionsChooseClassAndController) {
  const std::string yaml =
      R"(
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: edge}
spec: {controller: example.com/edge}
)" + webService() +
      simpleIngress("a", "a.test", "  ingressClassName: edge\n") +
      simpleIngress("b", "b.test", "", "  annotations: {kubernetes.io/ingress.class: edge}\n") +
      simpleIngress("c", "c.test", "", "  annotations: {kubernetes.io/ingress.class: sluice}\n");
  TranslateOptions options;
  options.classes.ingress_class = "edge";
  options.classes.controller = "example.com/edge";
  EXPECT_THAT(hostsOf(translate(storeFrom(yaml), options)), ElementsAre("a.test", "b.test"));
  EXPECT_THAT(hostsOf(translate(storeFrom(yaml), TranslateOptions{})), ElementsAre("c.test"));
}

// ---- merging rules across Ingresses ----

TEST(TranslateMerge, OldestIngressWinsThenNamespaceAndName) {
  const std::string rules_x = R"(  - host: Foo.Example.com
    http:
      paths:
      - {path: /x, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
)";
  const std::string yaml =
      std::string(kOurClass) + webService() + webService("u") +
      // Newest, but alphabetically first.
      pathsIngress("t", "a-newer", "2024-02-01T00:00:00Z", rules_x + pathLine("/a", "Exact")) +
      // Oldest: wins /x. Its own Prefix /y/ and ImplementationSpecific /y collide with each other.
      pathsIngress("t", "z-oldest", "2024-01-01T00:00:00Z",
                   rules_x + pathLine("/y/", "Prefix") + pathLine("/y", "ImplementationSpecific") +
                       pathLine("/y", "Exact")) +
      // Same timestamp as each other: namespace then name decides ("t/b" < "u/a").
      pathsIngress(
          "u", "a", "2024-01-15T00:00:00Z",
          "  - host: foo.example.com\n    http:\n      paths:\n" + pathLine("/z", "Prefix")) +
      pathsIngress(
          "t", "b", "2024-01-15T00:00:00Z",
          "  - host: foo.example.com\n    http:\n      paths:\n" + pathLine("/z/", "Prefix"));
  DesiredState s = translate(storeFrom(yaml), TranslateOptions{});
  EXPECT_EQ(dump(s), R"(host "foo.example.com"
  Prefix /x -> t/web:80 (t/z-oldest)
  Prefix /y/ -> t/web:80 (t/z-oldest)
  Exact /y -> t/web:80 (t/z-oldest)
  Prefix /z/ -> t/web:80 (t/b)
  Exact /a -> t/web:80 (t/a-newer)
cluster t/web:80: 10.0.0.1:8080
warning Ingress t/z-oldest: spec.rules[0].http.paths[2]: host "foo.example.com" path "/y" )"
                     R"((ImplementationSpecific) is shadowed by t/z-oldest
warning Ingress u/a: spec.rules[0].http.paths[0]: host "foo.example.com" path "/z" (Prefix) )"
                     R"(is shadowed by t/b
warning Ingress t/a-newer: spec.rules[0].http.paths[0]: host "foo.example.com" path "/x" )"
                     R"((Prefix) is shadowed by t/z-oldest
)");
}

TEST(TranslateMerge, TieBreakOrder) {
  const std::string rule = R"(  - host: foo.example.com
    http:
      paths:
      - {path: /x, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
)";
  const std::string base = std::string(kOurClass) + webService() + webService("u");
  // Newer loses although its name sorts first.
  DesiredState by_time =
      translate(storeFrom(base + pathsIngress("t", "a", "2024-02-01T00:00:00Z", rule) +
                          pathsIngress("t", "b", "2024-01-01T00:00:00Z", rule)),
                {});
  EXPECT_EQ(by_time.hosts.at(0).paths.at(0).ingress, "t/b");
  ASSERT_EQ(by_time.warnings.size(), 1u);
  EXPECT_EQ(by_time.warnings[0].object, "Ingress t/a");
  EXPECT_EQ(by_time.warnings[0].message,
            "spec.rules[0].http.paths[0]: host \"foo.example.com\" path \"/x\" (Prefix) is "
            "shadowed by t/b");
  // Equal time: namespace first, then name; timestamps compare as instants, not strings.
  DesiredState by_ns =
      translate(storeFrom(base + pathsIngress("u", "a", "2024-01-01T00:00:00Z", rule) +
                          pathsIngress("t", "z", "2024-01-01T01:00:00+01:00", rule)),
                {});
  EXPECT_EQ(by_ns.hosts.at(0).paths.at(0).ingress, "t/z");
  DesiredState by_name = translate(
      storeFrom(base + pathsIngress("t", "b", "", rule) + pathsIngress("t", "a", "", rule)), {});
  EXPECT_EQ(by_name.hosts.at(0).paths.at(0).ingress, "t/a");
}

TEST(TranslateMerge, PathsHostsAndTypes) {
  const std::string yaml = std::string(kOurClass) + webService() + pathsIngress("t", "i", "", R"(
  - host: "*.Example.com"
    http:
      paths:
      - {pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
  - http:
      paths:
      - {path: /any, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
  - host: bare.example.com
)");
  DesiredState s = translate(storeFrom(yaml), {});
  EXPECT_EQ(dump(s), R"(host ""
  Exact /any -> t/web:80 (t/i)
host "*.example.com"
  ImplementationSpecific / -> t/web:80 (t/i)
host "bare.example.com"
cluster t/web:80: 10.0.0.1:8080
)");
}

// The decoder already refuses Exact and Prefix paths with "//", dot-segments or "%2F" (the API
// server's rule); ImplementationSpecific paths and escapes reach translate.
TEST(TranslateRulePaths, NormalizedLikeRequestsAndInvalidOnesSkipped) {
  const std::string yaml =
      std::string(kOurClass) + webService() +
      pathsIngress(
          "t", "old", "2024-01-01T00:00:00Z",
          "  - http:\n      paths:\n" + pathLine("/caf%c3%a9", "Exact") +
              pathLine("/%7Euser", "Prefix") + pathLine("//a//b/./c/", "ImplementationSpecific") +
              pathLine("/x/..;/y", "ImplementationSpecific") +
              pathLine("/a%2Fb", "ImplementationSpecific") + pathLine("\"/q?x\"", "Prefix") +
              pathLine("/..", "ImplementationSpecific") + pathLine("\"/w\\\\x\"", "Exact")) +
      pathsIngress("t", "new", "2024-02-01T00:00:00Z",
                   "  - http:\n      paths:\n" + pathLine("/CAF%C3%A9", "Exact") +
                       pathLine("/~user/", "Prefix"));
  const DesiredState s = translate(storeFrom(yaml), {});
  const std::string p0 = "Ingress t/old: spec.rules[0].http.paths[";
  EXPECT_EQ(
      dump(s),
      R"(host ""
  Exact /caf%C3%A9 -> t/web:80 (t/old)
  Prefix /~user -> t/web:80 (t/old)
  ImplementationSpecific /a/b/c/ -> t/web:80 (t/old)
  ImplementationSpecific /y -> t/web:80 (t/old)
  Exact /CAF%C3%A9 -> t/web:80 (t/new)
cluster t/web:80: 10.0.0.1:8080
warning )" +
          p0 +
          R"(4].path "/a%2Fb" contains %2F or %5C, which requests may not carry (--path-escaped-slashes=reject); rule skipped
warning )" +
          p0 +
          R"(5].path "/q?x" contains a control byte, '#' or '?', which no request path can hold; rule skipped
warning )" +
          p0 + R"(6].path "/.." climbs above "/" with ".."; rule skipped
warning )" +
          p0 +
          R"(7].path "/w\x" contains \, which requests may not carry (--path-escaped-slashes=reject); rule skipped
warning Ingress t/new: spec.rules[0].http.paths[1]: host (any host) path "/~user/" (Prefix) is shadowed by t/old
)");
  TranslateOptions keep;
  keep.paths.escaped_slashes = http::EscapedSlashes::kKeep;
  const DesiredState k = translate(storeFrom(yaml), keep);
  EXPECT_NE(dump(k).find("ImplementationSpecific /a%2Fb -> t/web:80 (t/old)"), std::string::npos)
      << dump(k);
  EXPECT_NE(dump(k).find("Exact /w\\x -> t/web:80 (t/old)"), std::string::npos) << dump(k);
}

// ---- backends → endpoints ----

constexpr const char* kApi = R"(
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: t}
spec:
  ports:
  - {name: http, port: 8080, targetPort: web}
  - {name: metrics, port: 9090, targetPort: 9091}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-a, namespace: t, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
endpoints:
- addresses: [10.0.1.2, 10.0.1.99]
  conditions: {ready: true}
- addresses: [10.0.1.1]
ports:
- {name: http, port: 8081}
- {name: metrics, port: 9091}
---
# Pods of another ReplicaSet name their container port differently: another number.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-b, namespace: t, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
endpoints:
- addresses: [10.0.2.1]
- addresses: [10.0.1.2]
ports:
- {name: http, port: 8082}
---
# Same label, other namespace: not ours.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-c, namespace: t2, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
endpoints: [{addresses: [10.9.9.9]}]
ports: [{name: http, port: 8081}]
---
# FQDN slices and slices without a port value are unusable.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-fqdn, namespace: t, labels: {kubernetes.io/service-name: api}}
addressType: FQDN
endpoints: [{addresses: [api.example.net]}]
ports: [{name: http, port: 8081}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-noport, namespace: t, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
endpoints: [{addresses: [10.0.3.1]}]
ports: [{name: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-v6, namespace: t, labels: {kubernetes.io/service-name: api}}
addressType: IPv6
endpoints: [{addresses: ["fd00::1"]}]
ports: [{name: http, port: 8081}]
)";

std::string backendsIngress(const std::string& backends) {
  std::string paths;
  int i = 0;
  std::istringstream in(backends);
  std::string port;
  while (in >> port) {
    const std::string sel = port.find_first_not_of("0123456789") == std::string::npos
                                ? "number: " + port
                                : "name: " + port;
    paths += "      - {path: /p" + std::to_string(i++) +
             ", pathType: Prefix, backend: {service: {name: api, port: {" + sel + "}}}}\n";
  }
  return pathsIngress("t", "i", "", "  - http:\n      paths:\n" + paths);
}

TEST(TranslateBackends, PortByNumberAndNameMapToSlicePorts) {
  DesiredState s = translate(
      storeFrom(std::string(kOurClass) + kApi + backendsIngress("8080 http metrics 8081 grpc")),
      {});
  EXPECT_EQ(dump(s), R"(host ""
  Prefix /p0 -> t/api:8080 (t/i)
  Prefix /p1 -> t/api:http (t/i)
  Prefix /p2 -> t/api:metrics (t/i)
  Prefix /p3 -> t/api:8081 (t/i)
  Prefix /p4 -> t/api:grpc (t/i)
cluster t/api:8080: 10.0.1.1:8081 10.0.1.2:8081 10.0.1.2:8082 10.0.2.1:8082 fd00::1:8081
cluster t/api:8081:
cluster t/api:grpc:
cluster t/api:http: 10.0.1.1:8081 10.0.1.2:8081 10.0.1.2:8082 10.0.2.1:8082 fd00::1:8081
cluster t/api:metrics: 10.0.1.1:9091 10.0.1.2:9091
warning Ingress t/i: backend t/api:8081: Service t/api has no port 8081
warning Ingress t/i: backend t/api:grpc: Service t/api has no port named "grpc"
)");
}

std::string oneSlice(const std::string& endpoints) {
  return std::string(kOurClass) + R"(
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: t}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-a, namespace: t, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{port: 8080}]
endpoints:
)" + endpoints +
         backendsIngress("80");
}

TEST(TranslateBackends, ReadyEndpointsOnly) {
  DesiredState s = translate(storeFrom(oneSlice(R"(
- {addresses: [10.0.0.4], conditions: {ready: true, serving: true, terminating: false}}
- {addresses: [10.0.0.3], conditions: {ready: false, serving: false, terminating: false}}
- {addresses: [10.0.0.2], conditions: {ready: false, serving: true, terminating: true}}
- {addresses: [10.0.0.1]}
- {addresses: [10.0.0.1]}
)")),
                             {});
  ASSERT_EQ(s.clusters.size(), 1u);
  EXPECT_EQ(s.clusters[0].endpoints,
            (std::vector<Endpoint>{{"10.0.0.1", 8080, true}, {"10.0.0.4", 8080, true}}));
}

TEST(TranslateBackends, FallbackToServingTerminatingWhenNoneReady) {
  DesiredState s = translate(storeFrom(oneSlice(R"(
- {addresses: [10.0.0.3], conditions: {ready: false, serving: false, terminating: true}}
- {addresses: [10.0.0.2], conditions: {ready: false, serving: true, terminating: true}}
- {addresses: [10.0.0.5], conditions: {ready: false, terminating: true}}
- {addresses: [10.0.0.6], conditions: {ready: false, serving: true}}
- {addresses: [10.0.0.1], conditions: {ready: false, serving: true, terminating: true}}
)")),
                             {});
  ASSERT_EQ(s.clusters.size(), 1u);
  EXPECT_EQ(s.clusters[0].endpoints,
            (std::vector<Endpoint>{{"10.0.0.1", 8080, false}, {"10.0.0.2", 8080, false}}));
  EXPECT_THAT(s.warnings, IsEmpty());
}

TEST(TranslateBackends, NoEndpointsIsNotAWarning) {
  DesiredState s = translate(storeFrom(oneSlice("  []\n")), {});
  ASSERT_EQ(s.clusters.size(), 1u);
  EXPECT_THAT(s.clusters[0].endpoints, IsEmpty());
  EXPECT_THAT(s.warnings, IsEmpty());
}

TEST(TranslateBackends, MissingServiceExternalNameAndUdp) {
  const std::string yaml = std::string(kOurClass) + R"(
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: t}
spec: {type: ExternalName, externalName: example.net}
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: t}
spec: {ports: [{port: 53, protocol: UDP}]}
)" + pathsIngress("t", "i", "", R"(  - http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}
      - {path: /b, pathType: Prefix, backend: {service: {name: ext, port: {number: 80}}}}
      - {path: /c, pathType: Prefix, backend: {service: {name: dns, port: {number: 53}}}}
      - {path: /d, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}
)");
  DesiredState s = translate(storeFrom(yaml), {});
  EXPECT_EQ(dump(s), R"(host ""
  Prefix /a -> t/nope:80 (t/i)
  Prefix /b -> t/ext:80 (t/i)
  Prefix /c -> t/dns:53 (t/i)
  Prefix /d -> t/nope:80 (t/i)
cluster t/dns:53:
cluster t/ext:80:
cluster t/nope:80:
warning Ingress t/i: backend t/dns:53: Service port uses UDP, not TCP
warning Ingress t/i: backend t/ext:80: Service t/ext is of type ExternalName, which has no )"
                     R"(endpoints to route to
warning Ingress t/i: backend t/nope:80: Service t/nope not found
)");
}

TEST(TranslateBackends, LoadBalanceAnnotation) {
  auto svc = [](const std::string& name, const std::string& annotation) {
    return "\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: " + name +
           "\n  namespace: t\n" +
           (annotation.empty() ? ""
                               : "  annotations: {sluice.dev/load-balance: " + annotation + "}\n") +
           "spec: {ports: [{port: 80}]}\n";
  };
  const std::string yaml = std::string(kOurClass) + svc("a", "") + svc("b", "round-robin") +
                           svc("c", "least-request") + svc("d", "random") +
                           pathsIngress("t", "i", "", R"(  - http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
      - {path: /b, pathType: Prefix, backend: {service: {name: b, port: {number: 80}}}}
      - {path: /c, pathType: Prefix, backend: {service: {name: c, port: {number: 80}}}}
      - {path: /d, pathType: Prefix, backend: {service: {name: d, port: {number: 80}}}}
)");
  DesiredState s = translate(storeFrom(yaml), {});
  ASSERT_EQ(s.clusters.size(), 4u);
  EXPECT_EQ(s.clusters[0].lb, LbPolicy::kRoundRobin);
  EXPECT_EQ(s.clusters[1].lb, LbPolicy::kRoundRobin);
  EXPECT_EQ(s.clusters[2].lb, LbPolicy::kLeastRequest);
  EXPECT_EQ(s.clusters[3].lb, LbPolicy::kRoundRobin);
  EXPECT_THAT(s.warnings, ElementsAre(Warning{"Service t/d",
                                              "annotation sluice.dev/load-balance: unknown value "
                                              "\"random\" (want round-robin or least-request); "
                                              "using round-robin"}));
}

TEST(TranslateBackends, ResourceBackendsAreSkipped) {
  const std::string yaml = std::string(kOurClass) + webService() + R"(
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i, namespace: t}
spec:
  ingressClassName: sluice
  defaultBackend: {resource: {apiGroup: k8s.example.com, kind: Bucket, name: b}}
  rules:
  - http:
      paths:
      - {path: /r, pathType: Prefix, backend: {resource: {kind: Bucket, name: b}}}
      - {path: /s, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
)";
  DesiredState s = translate(storeFrom(yaml), {});
  EXPECT_EQ(dump(s), R"(host ""
  Prefix /s -> t/web:80 (t/i)
cluster t/web:80: 10.0.0.1:8080
warning Ingress t/i: spec.defaultBackend: resource backends are not supported; ignored
warning Ingress t/i: spec.rules[0].http.paths[0].backend: resource backends are not supported; )"
                     R"(ignored
)");
}

// ---- default backends ----

TEST(TranslateDefaults, HostAndGlobalDefaults) {
  auto ing = [](const std::string& name, const std::string& created, const std::string& default_svc,
                const std::string& rules) {
    std::string out =
        "\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: " + name +
        ", namespace: t, creationTimestamp: \"" + created +
        "\"}\nspec:\n  ingressClassName: sluice\n";
    if (!default_svc.empty()) {
      out += "  defaultBackend: {service: {name: " + default_svc + ", port: {number: 80}}}\n";
    }
    if (!rules.empty()) {
      out += "  rules:\n" + rules;
    }
    return out;
  };
  const std::string rule_a = "  - host: a.test\n";
  const std::string rule_b = "  - host: b.test\n";
  const std::string rule_c =
      "  - host: c.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: "
      "{service: {name: web, port: {number: 80}}}}\n";
  const std::string yaml =
      std::string(kOurClass) + webService() + ing("i1", "2024-01-01T00:00:00Z", "d1", rule_a) +
      ing("i2", "2024-01-02T00:00:00Z", "d2", rule_a + rule_b) +
      ing("i3", "2024-01-03T00:00:00Z", "d3", "") + ing("i4", "2024-01-04T00:00:00Z", "", rule_c);
  DesiredState s = translate(storeFrom(yaml), {});
  EXPECT_EQ(dump(s), R"(default t/d1:80
host "a.test" default t/d1:80
host "b.test" default t/d2:80
host "c.test"
  Prefix / -> t/web:80 (t/i4)
cluster t/d1:80:
cluster t/d2:80:
cluster t/web:80: 10.0.0.1:8080
warning Ingress t/i3: spec.defaultBackend is shadowed by the default backends of older Ingresses
warning Ingress t/i1: backend t/d1:80: Service t/d1 not found
warning Ingress t/i2: backend t/d2:80: Service t/d2 not found
)");
}

TEST(TranslateDefaults, DefaultBackendOnlyIngress) {
  // The conformance "default backend" feature: one Ingress, only a defaultBackend.
  const std::string yaml = std::string(kOurClass) + webService() + R"(
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: default-backend, namespace: t}
spec:
  ingressClassName: sluice
  defaultBackend: {service: {name: web, port: {number: 80}}}
)";
  DesiredState s = translate(storeFrom(yaml), {});
  EXPECT_EQ(dump(s), "default t/web:80\ncluster t/web:80: 10.0.0.1:8080\n");
}

// ---- determinism ----

TEST(TranslateDeterminism, InputOrderDoesNotMatter) {
  // Objects as separate documents, inserted into the store in many orders.
  const std::string all = std::string(kOurClass) + kApi + webService() + webService("u") +
                          pathsIngress("t", "x", "2024-01-01T00:00:00Z", R"(  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
)") + pathsIngress("u", "y", "2024-01-01T00:00:00Z", R"(  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /u, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
)") + pathsIngress("t", "w", "2024-01-02T00:00:00Z", R"(  - host: a.test
    http:
      paths:
      - {path: /api/, pathType: Prefix, backend: {service: {name: api, port: {number: 9090}}}}
)");
  Result<k8s::ParsedManifest> parsed = k8s::parseManifest(all, k8s::ManifestFormat::kYaml);
  ASSERT_OK(parsed);
  std::vector<k8s::Object> objects;
  for (const auto& v : parsed->objects) {
    objects.push_back(k8s::decodeObject(v).value());
  }
  k8s::Store reference_store;
  for (const auto& o : objects) {
    reference_store.upsert(o);
  }
  const DesiredState reference = translate(reference_store, {});
  EXPECT_EQ(reference.warnings.size(), 2u) << dump(reference);
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(objects.begin(), objects.end(), rng);
    k8s::Store store;
    for (const auto& o : objects) {
      store.upsert(o);
    }
    const DesiredState s = translate(store, {});
    EXPECT_EQ(s.hosts, reference.hosts);
    EXPECT_EQ(s.clusters, reference.clusters);
    EXPECT_EQ(s.default_cluster, reference.default_cluster);
    EXPECT_EQ(s.warnings, reference.warnings);
    EXPECT_EQ(s.generation, 0u);
  }
}

TEST(TranslateDeterminism, ClustersUniqueSortedAndComplete) {
  const std::string yaml =
      std::string(kOurClass) + kApi + webService() + backendsIngress("http 8080 http metrics 8080");
  DesiredState s = translate(storeFrom(yaml), {});
  std::vector<std::string> names;
  for (const auto& c : s.clusters) {
    names.push_back(c.name);
  }
  EXPECT_THAT(names, ElementsAre("t/api:8080", "t/api:http", "t/api:metrics"));
  for (const auto& h : s.hosts) {
    for (const auto& p : h.paths) {
      EXPECT_TRUE(std::binary_search(names.begin(), names.end(), p.cluster)) << p.cluster;
    }
  }
}

// ---- the kubectl fixtures, end to end ----

TEST(TranslateFixtures, KubectlSnapshot) {
  k8s::ManifestSource source(std::filesystem::path(SLUICE_TESTDATA_DIR) / "k8s");
  ASSERT_TRUE(source.poll());
  ASSERT_THAT(source.warnings(), IsEmpty());
  DesiredState s = translate(source.store(), {});
  EXPECT_EQ(dump(s), R"(default shop/web:80
host "admin.shop.example.com" default shop/web:80
  Exact /metrics -> shop/api:9090 (shop/admin)
host "shop.example.com"
  Prefix / -> shop/web:80 (shop/web)
  Prefix /api -> shop/api:http (shop/web)
cluster shop/api:9090 least-request: 10.244.1.17:9090
cluster shop/api:http least-request: 10.244.1.17:8081 10.244.3.4:8082
cluster shop/web:80: 10.244.1.20:8080 10.244.2.21:8080
warning Secret shop/shop-tls: tls.crt: no PEM certificate (error:0680009B:asn1 encoding routines::too long); its hosts use the default certificate
)");  // the fixture's Secret carries placeholder PEM blocks, not a certificate
}

// ---- TCP routes (the --tcp-services ConfigMap) ----

std::string tcpServices(const std::string& data, const std::string& name = "sluice-tcp-services",
                        const std::string& ns = "sluice-system") {
  return "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\ndata:\n" + data;
}

std::string tcpDump(const DesiredState& s) {
  std::ostringstream out;
  for (const TcpRoute& r : s.tcp_routes) {
    out << r.port << " -> " << r.cluster << "\n";
  }
  for (const Warning& w : s.warnings) {
    out << "warning " << w.object << ": " << w.message << "\n";
  }
  return out.str();
}

TEST(TranslateTcp, PortsMapToServicePortsWithEndpoints) {
  const auto store = storeFrom(webService() + tcpServices(R"(
  "9000": "t/web:80"
  "5432": t/web:http
)"));
  const DesiredState s = translate(store, {});
  EXPECT_EQ(tcpDump(s),
            "5432 -> t/web:http\n"
            "9000 -> t/web:80\n"
            "warning ConfigMap sluice-system/sluice-tcp-services: backend t/web:http: Service "
            "t/web has no port named \"http\"\n");
  ASSERT_EQ(s.clusters.size(), 2U);
  EXPECT_EQ(s.clusters[0].name, "t/web:80");
  ASSERT_EQ(s.clusters[0].endpoints.size(), 1U);
  EXPECT_EQ(s.clusters[0].endpoints[0].address, "10.0.0.1");
  EXPECT_EQ(s.clusters[0].endpoints[0].port, 8080);
  EXPECT_THAT(s.clusters[1].endpoints, IsEmpty());
  EXPECT_THAT(s.hosts, IsEmpty());
}

TEST(TranslateTcp, BadEntriesAreSkippedAndGoodOnesKept) {
  const auto store = storeFrom(webService() + tcpServices(R"(
  "0": t/web:80
  "080": t/web:80
  "70000": t/web:80
  "http": t/web:80
  "8080": t/web:80
  "9001": web:80
  "9002": "t/web"
  "9003": "t/a/web:80"
  "9004": "t/web:0"
  "9005": "/web:80"
  "9006": "t/web:80"
)"));
  TranslateOptions options;
  options.reserved_ports = {8080, 10254};
  const DesiredState s = translate(store, options);
  const std::string w = "warning ConfigMap sluice-system/sluice-tcp-services: ";
  EXPECT_EQ(tcpDump(s),
            "9006 -> t/web:80\n" + w + "data[\"0\"]: key must be a port number 1-65535; skipped\n" +
                w + "data[\"080\"]: key must be a port number 1-65535; skipped\n" + w +
                "data[\"70000\"]: key must be a port number 1-65535; skipped\n" + w +
                "data[\"8080\"]: port 8080 is the agent's own listener; skipped\n" + w +
                "data[\"9001\"]: value must be \"namespace/service:port\"; skipped\n" + w +
                "data[\"9002\"]: value must be \"namespace/service:port\"; skipped\n" + w +
                "data[\"9003\"]: value must be \"namespace/service:port\"; skipped\n" + w +
                "data[\"9004\"]: service port 0 out of range; skipped\n" + w +
                "data[\"9005\"]: value must be \"namespace/service:port\"; skipped\n" + w +
                "data[\"http\"]: key must be a port number 1-65535; skipped\n");
}

TEST(TranslateTcp, OnlyTheNamedConfigMapCounts) {
  const auto store = storeFrom(webService() + tcpServices("  \"9000\": t/web:80\n", "other") +
                               tcpServices("  \"9001\": t/web:80\n", "tcp", "t"));
  EXPECT_EQ(tcpDump(translate(store, {})), "");
  TranslateOptions options;
  options.tcp_services = "t/tcp";
  EXPECT_EQ(tcpDump(translate(store, options)), "9001 -> t/web:80\n");
  options.tcp_services = "";
  EXPECT_EQ(tcpDump(translate(store, options)), "");
}

TEST(TranslateTcp, SharesClustersWithIngressBackends) {
  const auto store =
      storeFrom(std::string(kOurClass) + webService() + simpleIngress("a", "a.example") +
                tcpServices("  \"9000\": t/web:80\n"));
  const DesiredState s = translate(store, {});
  ASSERT_EQ(s.clusters.size(), 1U);
  EXPECT_EQ(s.clusters[0].name, "t/web:80");
  ASSERT_EQ(s.tcp_routes.size(), 1U);
  EXPECT_EQ(s.tcp_routes[0].cluster, "t/web:80");
}

}  // namespace
}  // namespace sluice::model
