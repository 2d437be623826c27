#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "k8s/manifest.hpp"
#include "k8s/objects.hpp"
#include "support/result.hpp"
#include "support/test_pki.hpp"

namespace sluice::k8s {
namespace {

// `text` as the lines of a YAML block scalar under a two-space key.
std::string indent(const std::string& text) {
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    out += "    " + text.substr(start, end - start) + "\n";
    start = end == std::string::npos ? text.size() : end + 1;
  }
  return out;
}

using ::testing::HasSubstr;

std::string readFixture(const std::string& name) {
  std::ifstream in(std::string(SLUICE_TESTDATA_DIR) + "/k8s/" + name);
  EXPECT_TRUE(in) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every object of a YAML text, decoded; a failure is a test failure.
std::vector<Object> decodeAll(const std::string& text,
                              ManifestFormat format = ManifestFormat::kYaml) {
  Result<ParsedManifest> parsed = parseManifest(text, format);
  EXPECT_OK(parsed);
  if (!parsed) {
    return {};
  }
  EXPECT_TRUE(parsed->problems.empty());
  std::vector<Object> out;
  for (const auto& v : parsed->objects) {
    Result<Object> r = decodeObject(v);
    EXPECT_OK(r);
    if (r) {
      out.push_back(std::move(*r));
    }
  }
  return out;
}

template <typename T>
T decodeOne(const std::string& text, ManifestFormat format = ManifestFormat::kYaml) {
  std::vector<Object> objects = decodeAll(text, format);
  EXPECT_EQ(objects.size(), 1u);
  if (objects.size() != 1 || !std::holds_alternative<T>(objects[0])) {
    ADD_FAILURE() << "not a single object of the expected kind";
    return T{};
  }
  return std::get<T>(objects[0]);
}

// The decode error of the single object in `yaml` ("" if it decoded).
std::string decodeError(const std::string& yaml) {
  Result<ParsedManifest> parsed = parseManifest(yaml, ManifestFormat::kYaml);
  EXPECT_OK(parsed);
  if (!parsed || parsed->objects.size() != 1) {
    ADD_FAILURE() << "not a single object";
    return "<no object>";
  }
  return test::errorOf(decodeObject(parsed->objects[0]));
}

// ---- fixtures: real kubectl output ----

TEST(DecodeFixture, IngressYaml) {
  Ingress ing = decodeOne<Ingress>(readFixture("ingress.yaml"));
  EXPECT_EQ(ing.metadata.name, "web");
  EXPECT_EQ(ing.metadata.ns, "shop");
  EXPECT_EQ(ing.metadata.uid, "6a1f9c0e-3b9e-4a53-9a43-1d2f0f7b1c11");
  EXPECT_EQ(ing.metadata.resource_version, "48213");
  EXPECT_EQ(ing.metadata.creation_timestamp, "2024-03-11T09:21:44Z");
  EXPECT_EQ(ing.metadata.creation_seconds, 1710148904);
  EXPECT_EQ(ing.metadata.labels.at("app.kubernetes.io/part-of"), "shop");
  EXPECT_THAT(ing.metadata.annotations.at("kubectl.kubernetes.io/last-applied-configuration"),
              HasSubstr("\"ingressClassName\":\"sluice\""));
  ASSERT_TRUE(ing.ingress_class_name.has_value());
  EXPECT_EQ(*ing.ingress_class_name, "sluice");
  EXPECT_FALSE(ing.default_backend.has_value());
  ASSERT_EQ(ing.rules.size(), 1u);
  const IngressRule& rule = ing.rules[0];
  EXPECT_EQ(rule.host, "shop.example.com");
  EXPECT_TRUE(rule.has_http);
  ASSERT_EQ(rule.paths.size(), 2u);
  EXPECT_EQ(rule.paths[0].path, "/");
  EXPECT_EQ(rule.paths[0].path_type, PathType::kPrefix);
  ASSERT_TRUE(rule.paths[0].backend.service.has_value());
  EXPECT_EQ(rule.paths[0].backend.service->name, "web");
  EXPECT_EQ(rule.paths[0].backend.service->port.number, 80);
  EXPECT_EQ(rule.paths[0].backend.service->port.name, "");
  EXPECT_EQ(rule.paths[1].backend.service->port.number, 0);
  EXPECT_EQ(rule.paths[1].backend.service->port.name, "http");
  ASSERT_EQ(ing.tls.size(), 1u);
  EXPECT_EQ(ing.tls[0].hosts, std::vector<std::string>{"shop.example.com"});
  EXPECT_EQ(ing.tls[0].secret_name, "shop-tls");
}

TEST(DecodeFixture, IngressJsonWithManagedFields) {
  Ingress ing = decodeOne<Ingress>(readFixture("ingress.json"), ManifestFormat::kJson);
  EXPECT_EQ(ing.metadata.name, "admin");
  EXPECT_EQ(ing.metadata.ns, "shop");
  EXPECT_FALSE(ing.ingress_class_name.has_value());
  ASSERT_TRUE(ing.default_backend.has_value());
  EXPECT_EQ(ing.default_backend->service->name, "web");
  EXPECT_EQ(ing.default_backend->service->port.number, 80);
  ASSERT_EQ(ing.rules.size(), 1u);
  EXPECT_EQ(ing.rules[0].paths[0].path_type, PathType::kExact);
  // The status writer compares against what is published.
  EXPECT_EQ(ing.status_load_balancer, (std::vector<LoadBalancerIngress>{{"192.0.2.10", ""}}));
}

TEST(DecodeIngress, StatusIsReadLenientlyAndNeverFailsTheDecode) {
  const std::string head = R"(apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a}
spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}
)";
  Ingress ing = decodeOne<Ingress>(
      head + "status: {loadBalancer: {ingress: [{ip: 192.0.2.1}, 7, {hostname: lb.example}]}}\n");
  EXPECT_EQ(ing.status_load_balancer,
            (std::vector<LoadBalancerIngress>{{"192.0.2.1", ""}, {"", "lb.example"}}));
  EXPECT_TRUE(decodeOne<Ingress>(head + "status: {loadBalancer: {ingress: 5}}\n")
                  .status_load_balancer.empty());
  EXPECT_TRUE(decodeOne<Ingress>(head + "status: []\n").status_load_balancer.empty());
  EXPECT_TRUE(decodeOne<Ingress>(head).status_load_balancer.empty());
}

TEST(DecodeFixture, IngressClass) {
  IngressClass cls = decodeOne<IngressClass>(readFixture("ingressclass.yaml"));
  EXPECT_EQ(cls.metadata.name, "sluice");
  EXPECT_EQ(cls.metadata.ns, "");  // cluster-scoped
  EXPECT_EQ(cls.controller, "sluice.dev/ingress");
  EXPECT_TRUE(cls.isDefault());
  EXPECT_EQ(refOf(cls).key(), "sluice");
  EXPECT_EQ(refOf(cls).display(), "IngressClass sluice");
}

TEST(DecodeFixture, Service) {
  Service svc = decodeOne<Service>(readFixture("service.yaml"));
  EXPECT_EQ(svc.metadata.name, "api");
  EXPECT_EQ(svc.type, "ClusterIP");
  EXPECT_EQ(svc.cluster_ip, "10.96.14.200");
  ASSERT_EQ(svc.ports.size(), 2u);
  EXPECT_EQ(svc.ports[0].name, "http");
  EXPECT_EQ(svc.ports[0].port, 8080);
  EXPECT_EQ(svc.ports[0].protocol, "TCP");
  ASSERT_TRUE(svc.ports[0].target_port.has_value());
  EXPECT_TRUE(svc.ports[0].target_port->isName());
  EXPECT_EQ(svc.ports[0].target_port->name, "http-alt");
  EXPECT_EQ(svc.ports[1].target_port->number, 9090);
  EXPECT_EQ(svc.metadata.annotations.at("sluice.dev/load-balance"), "least-request");
}

TEST(DecodeFixture, EndpointSliceV1) {
  EndpointSlice slice = decodeOne<EndpointSlice>(readFixture("endpointslice-v1.yaml"));
  EXPECT_EQ(slice.api_version, "discovery.k8s.io/v1");
  EXPECT_EQ(slice.serviceName(), "api");
  EXPECT_EQ(slice.address_type, "IPv4");
  ASSERT_EQ(slice.endpoints.size(), 2u);
  EXPECT_EQ(slice.endpoints[0].addresses, std::vector<std::string>{"10.244.1.17"});
  EXPECT_EQ(slice.endpoints[0].conditions.ready, std::optional<bool>(true));
  EXPECT_EQ(slice.endpoints[0].node_name, std::optional<std::string>("worker-1"));
  EXPECT_EQ(slice.endpoints[0].zone, std::optional<std::string>("zone-a"));
  EXPECT_EQ(slice.endpoints[1].conditions.ready, std::optional<bool>(false));
  EXPECT_EQ(slice.endpoints[1].conditions.serving, std::optional<bool>(true));
  EXPECT_EQ(slice.endpoints[1].conditions.terminating, std::optional<bool>(true));
  ASSERT_EQ(slice.ports.size(), 2u);
  EXPECT_EQ(slice.ports[0].name, "http");
  EXPECT_EQ(slice.ports[0].port, std::optional<std::int32_t>(8081));
}

TEST(DecodeFixture, EndpointSliceV1beta1IgnoresTopology) {
  EndpointSlice slice = decodeOne<EndpointSlice>(readFixture("endpointslice-v1beta1.yaml"));
  EXPECT_EQ(slice.api_version, "discovery.k8s.io/v1beta1");
  ASSERT_EQ(slice.endpoints.size(), 1u);
  EXPECT_EQ(slice.endpoints[0].conditions.ready, std::optional<bool>(true));
  EXPECT_FALSE(slice.endpoints[0].conditions.serving.has_value());
  EXPECT_FALSE(slice.endpoints[0].conditions.terminating.has_value());
  EXPECT_FALSE(slice.endpoints[0].node_name.has_value());
  EXPECT_EQ(slice.ports[0].port, std::optional<std::int32_t>(8082));
}

TEST(DecodeFixture, ListIsExpanded) {
  std::vector<Object> objects = decodeAll(readFixture("list.yaml"));
  ASSERT_EQ(objects.size(), 2u);
  ASSERT_TRUE(std::holds_alternative<Service>(objects[0]));
  ASSERT_TRUE(std::holds_alternative<EndpointSlice>(objects[1]));
  const Service& svc = std::get<Service>(objects[0]);
  EXPECT_EQ(svc.ports[0].name, "");
  EXPECT_EQ(svc.ports[0].target_port->number, 8080);
  const EndpointSlice& slice = std::get<EndpointSlice>(objects[1]);
  EXPECT_EQ(slice.ports[0].name, "");  // name: "" in the fixture
  EXPECT_EQ(slice.endpoints.size(), 2u);
}

TEST(DecodeFixture, Secret) {
  Secret secret = decodeOne<Secret>(readFixture("secret.yaml"));
  EXPECT_EQ(secret.type, "kubernetes.io/tls");
  // The fixture's PEM blocks hold no real certificate: decoded, refused, reported; the Secret
  // itself is still an object (its hosts fall back to the default certificate).
  EXPECT_EQ(secret.certificate, nullptr);
  EXPECT_THAT(secret.certificate_error, HasSubstr("tls.crt"));
}

TEST(Decode, TlsSecretBecomesACertificate) {
  const test::Pem pem = test::makeCertificate({.names = {"a.test"}});
  Secret secret = decodeOne<Secret>(test::tlsSecretYaml("t", "a", pem));
  ASSERT_NE(secret.certificate, nullptr) << secret.certificate_error;
  EXPECT_EQ(secret.certificate->fingerprint(), test::fingerprint(pem.cert));
  // stringData (plain text) works as well, and wins over data.
  Secret plain = decodeOne<Secret>(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: p, namespace: t}\n"
      "type: kubernetes.io/tls\ndata: {tls.crt: eA==, tls.key: eA==}\nstringData:\n"
      "  tls.crt: |\n" +
      indent(pem.cert) + "  tls.key: |\n" + indent(pem.key));
  ASSERT_NE(plain.certificate, nullptr) << plain.certificate_error;
}

TEST(Decode, TlsSecretProblems) {
  const test::Pem a = test::makeCertificate({.names = {"a.test"}});
  const test::Pem b = test::makeCertificate({.names = {"b.test"}});
  Secret mismatch = decodeOne<Secret>(test::tlsSecretYaml("t", "a", {a.cert, b.key}));
  EXPECT_EQ(mismatch.certificate, nullptr);
  EXPECT_THAT(mismatch.certificate_error, HasSubstr("does not match"));
  Secret bad64 = decodeOne<Secret>(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: p, namespace: t}\n"
      "type: kubernetes.io/tls\ndata: {tls.crt: \"%%%%\", tls.key: eA==}\n");
  EXPECT_THAT(bad64.certificate_error, HasSubstr("data.tls.crt: base64"));
  Secret missing = decodeOne<Secret>(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: p, namespace: t}\n"
      "type: kubernetes.io/tls\ndata: {tls.crt: eA==}\n");
  EXPECT_EQ(missing.certificate_error, "tls.key is missing");
}

TEST(Decode, ConfigMapData) {
  ConfigMap cm = decodeOne<ConfigMap>(R"(
apiVersion: v1
kind: ConfigMap
metadata: {name: sluice-tcp-services, namespace: sluice-system}
data:
  "9000": default/web:80
  "5432": "db/postgres:5432"
)");
  EXPECT_EQ(cm.metadata.ns, "sluice-system");
  EXPECT_EQ(cm.data.size(), 2u);
  EXPECT_EQ(cm.data.at("9000"), "default/web:80");
}

// ---- decoding details ----

TEST(Decode, NamespaceDefaultsAndSlicePortNameNil) {
  EndpointSlice slice = decodeOne<EndpointSlice>(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s, labels: {kubernetes.io/service-name: svc}}
addressType: IPv6
endpoints:
- addresses: ["fd00::1"]
ports:
- port: 8080
- name: null
  port: null
)");
  EXPECT_EQ(slice.metadata.ns, "default");
  ASSERT_EQ(slice.ports.size(), 2u);
  EXPECT_EQ(slice.ports[0].name, "");
  EXPECT_EQ(slice.ports[1].name, "");
  EXPECT_FALSE(slice.ports[1].port.has_value());
  EXPECT_FALSE(slice.endpoints[0].conditions.ready.has_value());
}

TEST(Decode, AnnotationsStayStringsWhateverTheyLookLike) {
  Ingress ing = decodeOne<Ingress>(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    a: true
    b: 80
    c: 0x50
    d: 1.50
    e: "yes"
    f:
    g: 007
    h: True
  labels:
    tier: 1
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
)");
  const auto& a = ing.metadata.annotations;
  EXPECT_EQ(a.at("a"), "true");
  EXPECT_EQ(a.at("b"), "80");
  EXPECT_EQ(a.at("c"), "0x50");
  EXPECT_EQ(a.at("d"), "1.50");
  EXPECT_EQ(a.at("e"), "yes");
  EXPECT_EQ(a.at("f"), "");
  EXPECT_EQ(a.at("g"), "007");
  EXPECT_EQ(a.at("h"), "True");
  EXPECT_EQ(ing.metadata.labels.at("tier"), "1");
}

TEST(Decode, TargetPortAcceptsIntAndDigitString) {
  Service svc = decodeOne<Service>(R"(
apiVersion: v1
kind: Service
metadata: {name: s, namespace: n}
spec:
  ports:
  - {name: a, port: 80, targetPort: 8080}
  - {name: b, port: 81, targetPort: "8081"}
  - {name: c, port: 82, targetPort: web}
  - {name: d, port: 83}
)");
  ASSERT_EQ(svc.ports.size(), 4u);
  EXPECT_EQ(svc.ports[0].target_port, (IntOrString{8080, ""}));
  EXPECT_EQ(svc.ports[1].target_port, (IntOrString{8081, ""}));
  EXPECT_EQ(svc.ports[2].target_port, (IntOrString{0, "web"}));
  EXPECT_FALSE(svc.ports[3].target_port.has_value());
}

TEST(Decode, ImplementationSpecificMayOmitPath) {
  Ingress ing = decodeOne<Ingress>(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - http:
      paths:
      - pathType: ImplementationSpecific
        backend: {service: {name: web, port: {number: 80}}}
)");
  EXPECT_EQ(ing.rules[0].paths[0].path, "");
  EXPECT_EQ(ing.rules[0].paths[0].path_type, PathType::kImplementationSpecific);
}

TEST(Decode, HostCaseIsToleratedAndWildcardAccepted) {
  Ingress ing = decodeOne<Ingress>(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: Foo.Example.COM
  - host: "*.example.com"
  - host: ""
)");
  EXPECT_EQ(ing.rules[0].host, "Foo.Example.COM");
  EXPECT_FALSE(ing.rules[0].has_http);
  EXPECT_EQ(ing.rules[1].host, "*.example.com");
  EXPECT_EQ(ing.rules[2].host, "");
}

TEST(Decode, ResourceBackend) {
  Ingress ing = decodeOne<Ingress>(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  defaultBackend:
    resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static-assets}
)");
  ASSERT_TRUE(ing.default_backend->resource.has_value());
  EXPECT_EQ(ing.default_backend->resource->kind, "StorageBucket");
}

TEST(Decode, JsonNumbersOfEveryShape) {
  // A port written as 80.0 by some encoder is still 80; 80.5 is not a port.
  auto v = boost::json::parse(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
    "spec":{"ports":[{"name":"a","port":80.0},{"name":"b","port":80.5}]}})");
  EXPECT_EQ(test::errorOf(decodeObject(v)),
            "Service default/s: spec.ports[1].port: must be an integer");
  auto big = boost::json::parse(R"({"apiVersion":"v1","kind":"Service",
    "metadata":{"name":"s"},"spec":{"ports":[{"port":18446744073709551615}]}})");
  EXPECT_EQ(test::errorOf(decodeObject(big)),
            "Service default/s: spec.ports[0].port: must be an integer");
}

TEST(Decode, ObjectRefPeekAndHelpers) {
  auto v = boost::json::parse(
      R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"n"},"spec":7})");
  std::optional<ObjectRef> ref = peekRef(v);
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(*ref, (ObjectRef{"Service", "n", "s"}));
  EXPECT_EQ(ref->display(), "Service n/s");
  EXPECT_EQ(peekRef(boost::json::parse(R"({"kind":"Service","metadata":{}})")), std::nullopt);
  EXPECT_EQ(peekRef(boost::json::parse(R"([1,2])")), std::nullopt);
  auto cls = peekRef(boost::json::parse(
      R"({"kind":"IngressClass","metadata":{"name":"c","namespace":"ignored"}})"));
  EXPECT_EQ(*cls, (ObjectRef{"IngressClass", "", "c"}));
  auto defaulted = peekRef(boost::json::parse(R"({"kind":"Secret","metadata":{"name":"x"}})"));
  EXPECT_EQ(defaulted->ns, "default");
}

TEST(Decode, Rfc3339) {
  EXPECT_EQ(parseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseRfc3339("2024-03-11T09:21:44Z"), 1710148904);
  EXPECT_EQ(parseRfc3339("2024-03-11T09:21:44.123456Z"), 1710148904);
  EXPECT_EQ(parseRfc3339("2024-03-11T11:21:44+02:00"), 1710148904);
  EXPECT_EQ(parseRfc3339("2024-03-11T04:21:44-05:00"), 1710148904);
  EXPECT_EQ(parseRfc3339("2000-02-29T00:00:00Z"), 951782400);
  EXPECT_EQ(parseRfc3339("2024-03-11 09:21:44Z"), 1710148904);
  EXPECT_EQ(parseRfc3339("2024-03-11T09:21:44"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2024-13-11T09:21:44Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("yesterday"), std::nullopt);
  EXPECT_EQ(parseRfc3339(""), std::nullopt);
  EXPECT_EQ(parseRfc3339("2024-03-11T09:21:44.Z"), std::nullopt);
  EXPECT_EQ(parseRfc3339("2024-03-11T09:21:44Zjunk"), std::nullopt);
}

// ---- validation: the messages users see ----

constexpr const char* kIngressHead = R"(apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
)";

std::string ingressWithPaths(const std::string& paths) {
  return std::string(kIngressHead) + "spec:\n  rules:\n  - host: a.example.com\n    http:\n" +
         "      paths:\n" + paths;
}

constexpr const char* kGoodPath = R"(      - path: /ok
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
)";

struct ValidationCase {
  const char* name;
  std::string yaml;
  std::string error;
};

class Validation : public ::testing::TestWithParam<ValidationCase> {};

TEST_P(Validation, Message) {
  EXPECT_EQ(decodeError(GetParam().yaml), GetParam().error);
}

const std::string kRule0 = "Ingress default/web: spec.rules[0].http.paths[1].";

INSTANTIATE_TEST_SUITE_P(
    Ingress, Validation,
    ::testing::Values(
        ValidationCase{"BadPathType", ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Regex
        backend: {service: {name: web, port: {number: 80}}}
)"),
                       kRule0 + "pathType: must be Exact, Prefix or ImplementationSpecific"},
        ValidationCase{"MissingPathType",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        backend: {service: {name: web, port: {number: 80}}}
)"),
                       kRule0 + "pathType: required (Exact, Prefix or ImplementationSpecific)"},
        ValidationCase{"RelativeExact",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: foo
        pathType: Exact
        backend: {service: {name: web, port: {number: 80}}}
)"),
                       kRule0 + "path: \"foo\" must be an absolute path (start with '/')"},
        ValidationCase{"EmptyPrefix",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
)"),
                       kRule0 + "path: \"\" must be an absolute path (start with '/')"},
        ValidationCase{"RelativeImplementationSpecific",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: foo
        pathType: ImplementationSpecific
        backend: {service: {name: web, port: {number: 80}}}
)"),
                       kRule0 + "path: \"foo\" must be an absolute path (start with '/')"},
        ValidationCase{"DotSegment",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /a/../b
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
)"),
                       kRule0 + "path: \"/a/../b\" must not contain '/../'"},
        ValidationCase{
            "BothServiceAndResource", ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend:
          service: {name: web, port: {number: 80}}
          resource: {kind: Bucket, name: b}
)"),
            kRule0 + "backend: must specify exactly one of service or resource, not both"},
        ValidationCase{"NoBackendTarget",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {}
)"),
                       kRule0 + "backend: must specify exactly one of service or resource"},
        ValidationCase{"MissingBackend",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
)"),
                       kRule0 + "backend: required"},
        ValidationCase{"V1beta1Backend",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {serviceName: web, servicePort: 80}
)"),
                       kRule0 + "backend: serviceName/servicePort are networking.k8s.io/v1beta1 "
                                "fields; networking.k8s.io/v1 uses service.name and service.port"},
        ValidationCase{"PortNumberAndName",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80, name: http}}}
)"),
                       kRule0 + "backend.service.port: must specify exactly one of number or name"},
        ValidationCase{"PortNeither", ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {service: {name: web, port: {}}}
)"),
                       kRule0 + "backend.service.port: must specify exactly one of number or name"},
        ValidationCase{"PortZeroIsUnset",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {service: {name: web, port: {number: 0}}}
)"),
                       kRule0 + "backend.service.port: must specify exactly one of number or name"},
        ValidationCase{
            "PortOutOfRange", ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {service: {name: web, port: {number: 65536}}}
)"),
            kRule0 + "backend.service.port.number: must be between 1 and 65535, got 65536"},
        ValidationCase{"PortNumberAsString",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {service: {name: web, port: {number: "80"}}}
)"),
                       kRule0 + "backend.service.port.number: must be an integer"},
        ValidationCase{"BadPortName", ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {service: {name: web, port: {name: "8080"}}}
)"),
                       kRule0 + "backend.service.port.name: \"8080\" must be a port name (1-15 of "
                                "a-z, 0-9, '-', with a letter)"},
        ValidationCase{"MissingServiceName",
                       ingressWithPaths(std::string(kGoodPath) + R"(      - path: /x
        pathType: Prefix
        backend: {service: {port: {number: 80}}}
)"),
                       kRule0 + "backend.service.name: required"}),
    [](const auto& info) { return info.param.name; });

std::string ingressWithHost(const std::string& host) {
  return std::string(kIngressHead) + "spec:\n  rules:\n  - host: \"" + host + "\"\n";
}

INSTANTIATE_TEST_SUITE_P(
    Hosts, Validation,
    ::testing::Values(
        ValidationCase{"BareStar", ingressWithHost("*"),
                       "Ingress default/web: spec.rules[0].host: a bare \"*\" is not allowed; use "
                       "a host-less rule to match every host"},
        ValidationCase{"StarInside", ingressWithHost("foo.*.com"),
                       "Ingress default/web: spec.rules[0].host: \"foo.*.com\": '*' is only "
                       "allowed as the whole first label (*.example.com)"},
        ValidationCase{"PartialStarLabel", ingressWithHost("*foo.com"),
                       "Ingress default/web: spec.rules[0].host: \"*foo.com\": '*' is only "
                       "allowed as the whole first label (*.example.com)"},
        ValidationCase{"Ipv4", ingressWithHost("192.0.2.1"),
                       "Ingress default/web: spec.rules[0].host: \"192.0.2.1\" must be a DNS "
                       "name, not an IP address"},
        ValidationCase{"Ipv6", ingressWithHost("::1"),
                       "Ingress default/web: spec.rules[0].host: \"::1\" must not contain ':' "
                       "(no port and no IPv6 address)"},
        ValidationCase{"Port", ingressWithHost("foo.com:8080"),
                       "Ingress default/web: spec.rules[0].host: \"foo.com:8080\" must not "
                       "contain ':' (no port and no IPv6 address)"},
        ValidationCase{"Underscore", ingressWithHost("foo_bar.com"),
                       "Ingress default/web: spec.rules[0].host: \"foo_bar.com\" must be a valid "
                       "DNS name (labels of a-z, 0-9 and '-')"},
        ValidationCase{"TrailingDot", ingressWithHost("foo.com."),
                       "Ingress default/web: spec.rules[0].host: \"foo.com.\" must be a valid DNS "
                       "name (labels of a-z, 0-9 and '-')"},
        ValidationCase{"GoodWildcard", ingressWithHost("*.foo.com"), ""},
        ValidationCase{"TlsHost",
                       std::string(kIngressHead) +
                           "spec:\n  defaultBackend: {service: {name: w, port: {number: 1}}}\n"
                           "  tls:\n  - hosts: [\"ok.com\", \"bad:443\"]\n",
                       "Ingress default/web: spec.tls[0].hosts[1]: \"bad:443\" must not contain "
                       "':' (no port and no IPv6 address)"}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Objects, Validation,
    ::testing::Values(
        ValidationCase{"NoRulesNoDefault", std::string(kIngressHead) + "spec: {}\n",
                       "Ingress default/web: spec: must specify rules or defaultBackend"},
        ValidationCase{"NoSpec", kIngressHead,
                       "Ingress default/web: spec: must specify rules or defaultBackend"},
        ValidationCase{"V1beta1DefaultBackend",
                       std::string(kIngressHead) + "spec: {backend: {serviceName: w}}\n",
                       "Ingress default/web: spec.backend: is a networking.k8s.io/v1beta1 field; "
                       "use spec.defaultBackend"},
        ValidationCase{"NoName",
                       "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {namespace: "
                       "shop}\nspec: {defaultBackend: {service: {name: w, port: {number: 1}}}}\n",
                       "Ingress shop/(unnamed): metadata.name: required"},
        ValidationCase{"NoMetadata", "apiVersion: v1\nkind: Secret\n",
                       "Secret default/(unnamed): metadata.name: required"},
        ValidationCase{"BadName", "apiVersion: v1\nkind: Secret\nmetadata: {name: Web/1}\n",
                       "Secret default/Web/1: metadata.name: \"Web/1\" must be a lowercase RFC "
                       "1123 subdomain (a-z, 0-9, '-', '.')"},
        ValidationCase{"BadTimestamp",
                       "apiVersion: v1\nkind: Secret\nmetadata: {name: s, creationTimestamp: "
                       "today}\n",
                       "Secret default/s: metadata.creationTimestamp: \"today\" must be an RFC "
                       "3339 time"},
        ValidationCase{"UnsupportedKind",
                       "apiVersion: apps/v1\nkind: Deployment\nmetadata: "
                       "{name: web}\n",
                       "unsupported kind Deployment"},
        ValidationCase{"NoKind", "apiVersion: v1\nmetadata: {name: web}\n", "kind: required"},
        ValidationCase{"ConfigMapNonStringData",
                       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {\"9000\": "
                       "[1]}\n",
                       "ConfigMap default/c: data.9000: must be a string"},
        ValidationCase{"NoApiVersion", "kind: Secret\nmetadata: {name: s}\n",
                       "Secret default/s: apiVersion: required"},
        ValidationCase{"OldIngressApi",
                       "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: "
                       "web}\n",
                       "Ingress default/web: apiVersion: networking.k8s.io/v1beta1 is not "
                       "supported (use networking.k8s.io/v1)"},
        ValidationCase{"RulesNotAList", std::string(kIngressHead) + "spec: {rules: nope}\n",
                       "Ingress default/web: spec.rules: must be a list"},
        ValidationCase{"EmptyPaths",
                       std::string(kIngressHead) + "spec: {rules: [{http: {paths: []}}]}\n",
                       "Ingress default/web: spec.rules[0].http.paths: required"},
        ValidationCase{"SeveralErrors",
                       std::string(kIngressHead) +
                           "spec:\n  rules:\n  - host: \"*\"\n    http:\n      paths:\n"
                           "      - {path: x, pathType: Exact, backend: {}}\n",
                       "Ingress default/web: spec.rules[0].host: a bare \"*\" is not allowed; use "
                       "a host-less rule to match every host; spec.rules[0].http.paths[0].path: "
                       "\"x\" must be an absolute path (start with '/'); "
                       "spec.rules[0].http.paths[0].backend: must specify exactly one of service "
                       "or resource"},
        ValidationCase{"ClassWithoutController",
                       "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: "
                       "c}\nspec: {}\n",
                       "IngressClass c: spec.controller: required"},
        ValidationCase{"ServicePortMissing",
                       "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: "
                       "[{name: a}]}\n",
                       "Service default/s: spec.ports[0].port: required"},
        ValidationCase{"ServicePortsUnnamed",
                       "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: "
                       "[{port: 80}, {name: b, port: 81}]}\n",
                       "Service default/s: spec.ports[0].name: required when the Service has "
                       "more than one port"},
        ValidationCase{"ServiceType",
                       "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: Magic}\n",
                       "Service default/s: spec.type: must be ClusterIP, NodePort, LoadBalancer "
                       "or ExternalName"},
        ValidationCase{"SliceAddressType",
                       "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: "
                       "s}\naddressType: IPv5\n",
                       "EndpointSlice default/s: addressType: must be IPv4, IPv6 or FQDN"},
        ValidationCase{"SliceAddress",
                       "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: "
                       "s}\naddressType: IPv4\nendpoints:\n- addresses: [\"10.0.0.256\"]\n",
                       "EndpointSlice default/s: endpoints[0].addresses[0]: \"10.0.0.256\" must "
                       "be a valid IPv4 address"},
        ValidationCase{"SliceV6AddressInV4Slice",
                       "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: "
                       "s}\naddressType: IPv4\nendpoints:\n- addresses: [\"fd00::1\"]\n",
                       "EndpointSlice default/s: endpoints[0].addresses[0]: \"fd00::1\" must be "
                       "a valid IPv4 address"},
        ValidationCase{"SliceCondition",
                       "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: "
                       "s}\naddressType: IPv4\nendpoints:\n- addresses: [\"10.0.0.1\"]\n  "
                       "conditions: {ready: maybe}\n",
                       "EndpointSlice default/s: endpoints[0].conditions.ready: must be a boolean"},
        ValidationCase{"SlicePortRange",
                       "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: "
                       "s}\naddressType: FQDN\nports: [{port: 0}]\n",
                       "EndpointSlice default/s: ports[0].port: must be between 1 and 65535, got "
                       "0"},
        ValidationCase{"SecretData",
                       "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: [1]}\n",
                       "Secret default/s: data.k: must be a base64 string"},
        ValidationCase{"LabelValueObject",
                       "apiVersion: v1\nkind: Secret\nmetadata: {name: s, labels: {a: {b: c}}}\n",
                       "Secret default/s: metadata.labels.a: must be a string"}),
    [](const auto& info) { return info.param.name; });

TEST(Decode, NotAnObject) {
  EXPECT_EQ(test::errorOf(decodeObject(boost::json::value(42))), "not an object");
  EXPECT_EQ(test::errorOf(decodeObject(boost::json::parse("[]"))), "not an object");
}

TEST(Decode, QuotedBooleanConditionsAreTolerated) {
  EndpointSlice slice = decodeOne<EndpointSlice>(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s}
addressType: IPv4
endpoints:
- addresses: ["10.0.0.1"]
  conditions: {ready: "false", serving: "True"}
)");
  EXPECT_EQ(slice.endpoints[0].conditions.ready, std::optional<bool>(false));
  EXPECT_EQ(slice.endpoints[0].conditions.serving, std::optional<bool>(true));
}

TEST(Decode, HostileShapesDoNotThrow) {
  // Every field with the wrong JSON type: errors, never exceptions.
  const char* texts[] = {
      R"({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":[],"spec":[]})",
      R"({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":1},
          "spec":{"rules":[1,{"host":2,"http":{"paths":[null,{"path":[],"pathType":{},
          "backend":{"service":{"name":{},"port":{"number":[],"name":7}}}}]}}],
          "tls":[3,{"hosts":"x"}],"defaultBackend":[]}})",
      R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"s","labels":[]},
          "spec":{"ports":[{"port":-1,"targetPort":-5},{"port":1e300,"targetPort":{}}]}})",
      R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"s"},
          "addressType":1,"endpoints":{"a":1},"ports":[{"port":"x","name":1}]})",
      R"({"apiVersion":1,"kind":"Secret","metadata":{"name":"s"}})",
      R"({"apiVersion":"v1","kind":7})",
  };
  for (const char* text : texts) {
    std::optional<Result<Object>> r;
    EXPECT_NO_THROW(r.emplace(decodeObject(boost::json::parse(text)))) << text;
    ASSERT_TRUE(r.has_value()) << text;
    EXPECT_FALSE(*r) << text;
    EXPECT_NE(test::errorOf(*r), "") << text;
  }
}

}  // namespace
}  // namespace sluice::k8s
