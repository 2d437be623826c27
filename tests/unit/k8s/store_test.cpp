#include <gtest/gtest.h>

#include <ctime>

#include "k8s/store.hpp"
#include "support/test_pki.hpp"

namespace sluice::k8s {
namespace {

Service makeService(const std::string& ns, const std::string& name, int port) {
  Service svc;
  svc.metadata.ns = ns;
  svc.metadata.name = name;
  svc.ports.push_back(ServicePort{"", "TCP", port, std::nullopt});
  return svc;
}

TEST(Store, UpsertReportsRealChangesOnly) {
  Store store;
  EXPECT_TRUE(store.upsert(makeService("a", "s", 80)));
  EXPECT_FALSE(store.upsert(makeService("a", "s", 80)));
  EXPECT_TRUE(store.upsert(makeService("a", "s", 81)));
  EXPECT_TRUE(store.upsert(makeService("b", "s", 81)));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.services().at("a/s").ports[0].port, 81);
  EXPECT_TRUE(store.contains(ObjectRef{"Service", "b", "s"}));
  EXPECT_FALSE(store.contains(ObjectRef{"Secret", "b", "s"}));
}

TEST(Store, KindsAreSeparateAndClassesClusterScoped) {
  Store store;
  IngressClass cls;
  cls.metadata.name = "sluice";
  cls.controller = "sluice.dev/ingress";
  Secret secret;
  secret.metadata.name = "s";
  secret.metadata.ns = "a";
  EXPECT_TRUE(store.upsert(cls));
  EXPECT_TRUE(store.upsert(secret));
  EXPECT_TRUE(store.upsert(makeService("a", "s", 80)));
  EXPECT_TRUE(store.ingressClasses().contains("sluice"));
  EXPECT_TRUE(store.secrets().contains("a/s"));
  EXPECT_EQ(store.size(), 3u);

  EXPECT_FALSE(store.remove(ObjectRef{"Ingress", "a", "s"}));
  EXPECT_FALSE(store.remove(ObjectRef{"Unknown", "a", "s"}));
  EXPECT_TRUE(store.remove(ObjectRef{"Secret", "a", "s"}));
  EXPECT_FALSE(store.remove(ObjectRef{"Secret", "a", "s"}));
  EXPECT_TRUE(store.remove(ObjectRef{"IngressClass", "", "sluice"}));
  EXPECT_EQ(store.size(), 1u);
}

TEST(Store, EqualityComparesContent) {
  Store a;
  Store b;
  EXPECT_EQ(a, b);
  a.upsert(makeService("n", "x", 1));
  EXPECT_NE(a, b);
  b.upsert(makeService("n", "x", 1));
  EXPECT_EQ(a, b);
  b.clear();
  EXPECT_TRUE(b.empty());
}

TEST(Store, BrokenSecretVersionKeepsTheLastGoodCertificate) {
  const test::Pem pem = test::makeCertificate({.names = {"a.test"}});
  Secret good;
  good.metadata.ns = "a";
  good.metadata.name = "s";
  good.type = "kubernetes.io/tls";
  good.certificate = *tls::Certificate::fromPem(pem.cert, pem.key, std::time(nullptr));
  Store store;
  EXPECT_TRUE(store.upsert(good));
  Secret broken = good;
  broken.certificate = nullptr;
  broken.certificate_error = "tls.key does not match the certificate in tls.crt";
  EXPECT_TRUE(store.upsert(broken));  // a change: the error is new
  const Secret& kept = store.secrets().at("a/s");
  EXPECT_EQ(kept.certificate, good.certificate);
  EXPECT_TRUE(kept.certificate_kept);
  EXPECT_EQ(kept.certificate_error, broken.certificate_error);
  EXPECT_FALSE(store.upsert(broken));  // the same broken version again: no change
  // Deleted and re-created broken: nothing to keep.
  EXPECT_TRUE(store.remove(ObjectRef{"Secret", "a", "s"}));
  EXPECT_TRUE(store.upsert(broken));
  EXPECT_EQ(store.secrets().at("a/s").certificate, nullptr);
}

}  // namespace
}  // namespace sluice::k8s
