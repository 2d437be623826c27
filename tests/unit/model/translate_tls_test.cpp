// translate() and TLS: spec.tls hosts with their certificates, Secret problems reported and
// routed to the default certificate, redirect and HSTS annotations, passthrough routes.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/translate.hpp"
#include "support/test_pki.hpp"
#include "translate_support.hpp"

namespace sluice::model {
namespace {

using test::kOurClass;
using test::storeFrom;
using test::webService;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string ingress(const std::string& name, const std::string& host, const std::string& tls,
                    const std::string& annotations = "", const std::string& path = "/") {
  return "\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name +
         "\n  namespace: t\n  creationTimestamp: \"2024-01-01T00:00:0" +
         std::to_string(name.size() % 10) + "Z\"\n" +
         (annotations.empty() ? "" : "  annotations: {" + annotations + "}\n") +
         "spec:\n  ingressClassName: sluice\n" + tls + "  rules:\n  - host: " + host +
         "\n    http:\n      paths:\n      - {path: " + path +
         ", pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n";
}

std::string secret(const std::string& name, const sluice::test::Pem& pem) {
  return "\n---\n" + sluice::test::tlsSecretYaml("t", name, pem);
}

const sluice::test::Pem& pemA() {
  static const sluice::test::Pem pem = sluice::test::makeCertificate({.names = {"a.test"}});
  return pem;
}

TEST(TranslateTls, HostsGetTheirSecretsCertificate) {
  const std::string yaml =
      std::string(kOurClass) + webService() + secret("a", pemA()) +
      ingress("i", "a.test", "  tls:\n  - {hosts: [A.test, \"*.w.test\"], secretName: a}\n");
  DesiredState s = translate(storeFrom(yaml), {});
  EXPECT_THAT(s.warnings, IsEmpty());
  ASSERT_EQ(s.tls_hosts.size(), 2u);
  EXPECT_EQ(s.tls_hosts[0].host, "*.w.test");
  EXPECT_EQ(s.tls_hosts[1].host, "a.test");  // lower-cased
  ASSERT_NE(s.tls_hosts[1].certificate, nullptr);
  EXPECT_EQ(s.tls_hosts[1].certificate->fingerprint(), sluice::test::fingerprint(pemA().cert));
  EXPECT_EQ(s.tls_hosts[1].secret, "t/a");
  EXPECT_TRUE(s.tls_hosts[1].ssl_redirect);
  EXPECT_EQ(s.tls_hosts[1].hsts, "");
}

TEST(TranslateTls, SecretProblemsFallBackToTheDefaultCertificate) {
  const sluice::test::Pem other = sluice::test::makeCertificate({.names = {"b.test"}});
  const std::string yaml =
      std::string(kOurClass) + webService() + secret("bad", {pemA().cert, other.key}) + R"(
---
apiVersion: v1
kind: Secret
metadata: {name: opaque, namespace: t}
type: Opaque
)" + ingress("i", "a.test", R"(  tls:
  - {hosts: [a.test], secretName: bad}
  - {hosts: [b.test], secretName: opaque}
  - {hosts: [c.test], secretName: missing}
  - {hosts: [d.test]}
)");
  DesiredState s = translate(storeFrom(yaml), {});
  ASSERT_EQ(s.tls_hosts.size(), 4u);
  for (const auto& h : s.tls_hosts) {
    EXPECT_EQ(h.certificate, nullptr) << h.host;
  }
  EXPECT_THAT(
      s.warnings,
      ElementsAre(Warning{"Secret t/bad",
                          "tls.key does not match the certificate in tls.crt; its hosts use the "
                          "default certificate"},
                  Warning{"Ingress t/i",
                          "spec.tls[1]: Secret t/opaque has type Opaque, want kubernetes.io/tls; "
                          "its hosts use the default certificate"},
                  Warning{"Ingress t/i",
                          "spec.tls[2]: Secret t/missing not found; its hosts use the default "
                          "certificate"}));
}

TEST(TranslateTls, OlderIngressKeepsAHostsCertificate) {
  const sluice::test::Pem b = sluice::test::makeCertificate({.names = {"a.test"}});
  const std::string yaml =
      std::string(kOurClass) + webService() + secret("a", pemA()) + secret("b", b) +
      ingress("old", "a.test", "  tls:\n  - {hosts: [a.test], secretName: a}\n") +
      ingress("newer", "a.test", "  tls:\n  - {hosts: [a.test], secretName: b}\n");
  DesiredState s = translate(storeFrom(yaml), {});
  ASSERT_EQ(s.tls_hosts.size(), 1u);
  EXPECT_EQ(s.tls_hosts[0].secret, "t/a");
  // (Its rule for the same path is shadowed too, which is another warning.)
  EXPECT_THAT(s.warnings,
              Contains(Warning{"Ingress t/newer",
                               "spec.tls[0]: host a.test already has TLS from Secret t/a (an "
                               "older Ingress); ignored"}));
}

TEST(TranslateTls, RedirectAndHstsAnnotations) {
  const std::string tls = "  tls:\n  - {hosts: [HOST]}\n";
  auto with = [&](const std::string& name, const std::string& host, const std::string& ann) {
    std::string t = tls;
    t.replace(t.find("HOST"), 4, host);
    return ingress(name, host, t, ann);
  };
  const std::string yaml =
      std::string(kOurClass) + webService() +
      with("a", "a.test", "sluice.dev/ssl-redirect: \"false\"") +
      with("bb", "b.test", "sluice.dev/hsts: \"max-age=31536000; includeSubDomains\"") +
      with("ccc", "c.test", "sluice.dev/hsts: \"max-age=1\\r\\nX-Evil: 1\"") +
      with("dddd", "d.test", "sluice.dev/ssl-redirect: \"maybe\"");
  DesiredState s = translate(storeFrom(yaml), {});
  ASSERT_EQ(s.tls_hosts.size(), 4u);
  EXPECT_FALSE(s.tls_hosts[0].ssl_redirect);
  EXPECT_EQ(s.tls_hosts[1].hsts, "max-age=31536000; includeSubDomains");
  EXPECT_EQ(s.tls_hosts[2].hsts, "");  // never a header injection
  EXPECT_TRUE(s.tls_hosts[3].ssl_redirect);
  EXPECT_THAT(s.warnings,
              ElementsAre(Warning{"Ingress t/ccc",
                                  "annotation sluice.dev/hsts: want \"max-age=SECONDS[; "
                                  "includeSubDomains][; preload]\"; ignored"},
                          Warning{"Ingress t/dddd",
                                  "annotation sluice.dev/ssl-redirect: want \"true\" or "
                                  "\"false\"; using true"}));
}

TEST(TranslateTls, PassthroughRoutesBySni) {
  const std::string yaml =
      std::string(kOurClass) + webService() +
      ingress("p", "P.test", "", "sluice.dev/ssl-passthrough: \"true\"") +
      ingress("q", "q.test", "", "sluice.dev/ssl-passthrough: \"true\"", "/api") +
      ingress("r", "r.test", "", "sluice.dev/ssl-passthrough: \"false\"") +
      ingress("s", "s.test", "",
              "sluice.dev/ssl-passthrough: \"true\", sluice.dev/proxy-protocol: \"v2\"");
  DesiredState s = translate(storeFrom(yaml), {});
  ASSERT_EQ(s.passthrough.size(), 2u);
  EXPECT_EQ(s.passthrough[0].host, "p.test");
  EXPECT_EQ(s.passthrough[0].cluster, "t/web:80");
  EXPECT_FALSE(s.passthrough[0].proxy_protocol);
  EXPECT_TRUE(s.passthrough[1].proxy_protocol);
  EXPECT_THAT(s.warnings,
              ElementsAre(Warning{"Ingress t/q",
                                  "spec.rules[0]: ssl-passthrough uses the backend of path "
                                  "\"/\"; none; skipped"}));
}

TEST(TranslateTls, DefaultCertificateFromASecret) {
  const std::string yaml = std::string(kOurClass) + webService() + secret("def", pemA());
  TranslateOptions options;
  options.default_ssl_certificate = "t/def";
  DesiredState s = translate(storeFrom(yaml), options);
  ASSERT_NE(s.default_certificate, nullptr);
  options.default_ssl_certificate = "t/nope";
  DesiredState missing = translate(storeFrom(yaml), options);
  EXPECT_EQ(missing.default_certificate, nullptr);
  EXPECT_THAT(missing.warnings,
              ElementsAre(Warning{"--default-ssl-certificate",
                                  "Secret: Secret t/nope not found; its hosts use the default "
                                  "certificate"}));
}

}  // namespace
}  // namespace sluice::model
