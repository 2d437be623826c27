// The reconciler: a store becomes a published snapshot; the same routing keeps its generation
// and its balancers; a change publishes a new generation, and unchanged clusters keep their
// balancer (and so their round-robin position); warnings and counters are rendered.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json/serialize.hpp>

#include "control/reconciler.hpp"
#include "k8s/manifest.hpp"
#include "support/result.hpp"

namespace sluice::control {
namespace {

using ::testing::HasSubstr;

k8s::Store storeFrom(const std::string& yaml) {
  k8s::Store store;
  auto parsed = k8s::parseManifest(yaml, k8s::ManifestFormat::kYaml);
  EXPECT_OK(parsed);
  if (parsed) {
    for (const auto& v : parsed->objects) {
      auto object = k8s::decodeObject(v);
      EXPECT_OK(object);
      if (object) {
        store.upsert(std::move(*object));
      }
    }
  }
  return store;
}

std::string service(const std::string& name, const std::string& address) {
  return "---\napiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         ", namespace: t}\nspec: {ports: [{port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\n"
         "kind: EndpointSlice\nmetadata: {name: " +
         name +
         "-1, namespace: t, labels: "
         "{kubernetes.io/service-name: " +
         name +
         "}}\naddressType: IPv4\nendpoints: "
         "[{addresses: [" +
         address + "]}]\nports: [{port: 80}]\n";
}

std::string manifests(const std::string& web_address, const std::string& api_address) {
  return "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: sluice}\n"
         "spec: {controller: sluice.dev/ingress}\n" +
         service("web", web_address) + service("api", api_address) +
         "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a, namespace: "
         "t}\nspec:\n  ingressClassName: sluice\n  rules:\n  - host: a.test\n    http:\n"
         "      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: web, port: "
         "{number: 80}}}}\n      - {path: /api, pathType: Prefix, backend: {service: {name: "
         "api, port: {number: 80}}}}\n";
}

TEST(Reconciler, SameRoutingKeepsTheGenerationAndTheSnapshotParts) {
  proxy::SnapshotHolder holder;
  Reconciler r({}, holder);
  EXPECT_TRUE(r.apply(storeFrom(manifests("10.0.0.1", "10.0.0.2")), {}));
  ASSERT_NE(holder.load(), nullptr);
  EXPECT_EQ(holder.generation(), 1u);
  const auto balancers = holder.load()->balancers;
  EXPECT_FALSE(r.apply(storeFrom(manifests("10.0.0.1", "10.0.0.2")),
                       {{"a.yaml", "a problem of the source"}}));
  EXPECT_EQ(holder.generation(), 1u);
  EXPECT_EQ(holder.load()->balancers, balancers);
  boost::json::object state;
  r.renderState(state);
  EXPECT_THAT(boost::json::serialize(state["warnings"]), HasSubstr("a problem of the source"));
}

TEST(Reconciler, AChangedClusterGetsANewBalancerTheOthersKeepTheirs) {
  proxy::SnapshotHolder holder;
  Reconciler r({}, holder);
  ASSERT_TRUE(r.apply(storeFrom(manifests("10.0.0.1", "10.0.0.2")), {}));
  const auto before = holder.load();
  const auto& names = before->routes->clusterNames();
  ASSERT_EQ(names.size(), 2u);
  EXPECT_TRUE(r.apply(storeFrom(manifests("10.0.0.1", "10.0.0.9")), {}));
  const auto after = holder.load();
  EXPECT_EQ(after->generation, 2u);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const bool changed = names[i] == "t/api:80";
    EXPECT_EQ(after->balancers[i] != before->balancers[i], changed) << names[i];
    // Counters survive: the same stats object for the same cluster name.
    EXPECT_EQ(after->cluster_stats[i], before->cluster_stats[i]) << names[i];
  }
}

TEST(Reconciler, RendersGenerationAndRejectedObjects) {
  proxy::SnapshotHolder holder;
  Reconciler r({}, holder);
  ASSERT_TRUE(r.apply(storeFrom(manifests("10.0.0.1", "10.0.0.2")), {{"x", "bad"}}));
  admin::MetricsWriter w;
  r.renderMetrics(w);
  const std::string text = w.text();
  EXPECT_THAT(text, HasSubstr("sluice_config_generation 1\n"));
  EXPECT_THAT(text, HasSubstr("sluice_rejected_objects 1\n"));
  EXPECT_THAT(text, HasSubstr("sluice_requests_total"));
  boost::json::object state;
  r.renderState(state);
  EXPECT_EQ(state["generation"].as_uint64(), 1u);
  EXPECT_EQ(state["hosts"].as_array().size(), 1u);
  EXPECT_EQ(state["clusters"].as_array().size(), 2u);
}

TEST(Reconciler, RendersRefusedEndpoints) {
  proxy::SnapshotHolder holder;
  model::TranslateOptions api;
  api.restrict_endpoints = true;
  Reconciler r(api, holder);
  ASSERT_TRUE(r.apply(storeFrom(manifests("127.0.0.1", "10.0.0.2")), {}));
  admin::MetricsWriter w;
  r.renderMetrics(w);
  EXPECT_THAT(w.text(), HasSubstr("sluice_endpoints_refused 1\n"));
  // The refusal is a warning like any other.
  EXPECT_THAT(w.text(), HasSubstr("sluice_rejected_objects 1\n"));
  // The gauge follows the current state.
  ASSERT_TRUE(r.apply(storeFrom(manifests("10.0.0.1", "10.0.0.2")), {}));
  admin::MetricsWriter w2;
  r.renderMetrics(w2);
  EXPECT_THAT(w2.text(), HasSubstr("sluice_endpoints_refused 0\n"));
}

}  // namespace
}  // namespace sluice::control
