// Helpers the translate() tests (translate_test.cpp, tenant_test.cpp) share: a store from YAML, a
// readable dump of a state, the objects and Ingress pieces most tests need.
#pragma once

#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "k8s/manifest.hpp"
#include "model/translate.hpp"
#include "support/result.hpp"

namespace sluice::model::test {

// Decodes every object of a multi-document YAML text into a store; any failure fails the test.
inline k8s::Store storeFrom(const std::string& yaml) {
  Result<k8s::ParsedManifest> parsed = k8s::parseManifest(yaml, k8s::ManifestFormat::kYaml);
  EXPECT_OK(parsed);
  k8s::Store store;
  if (!parsed) {
    return store;
  }
  EXPECT_THAT(parsed->problems, ::testing::IsEmpty());
  for (const auto& value : parsed->objects) {
    Result<k8s::Object> r = k8s::decodeObject(value);
    EXPECT_OK(r);
    if (r) {
      store.upsert(std::move(*r));
    }
  }
  return store;
}

// A readable rendering of a whole state, so expectations read like the state and failures diff.
inline std::string dump(const DesiredState& s, bool with_warnings = true) {
  std::ostringstream out;
  if (s.default_cluster) {
    out << "default " << *s.default_cluster << "\n";
  }
  for (const VirtualHost& h : s.hosts) {
    out << "host \"" << h.host << "\"";
    if (h.default_cluster) {
      out << " default " << *h.default_cluster;
    }
    out << "\n";
    for (const PathRule& p : h.paths) {
      out << "  " << pathTypeName(p.type) << " " << p.path << " -> " << p.cluster << " ("
          << p.ingress << ")\n";
    }
  }
  for (const Cluster& c : s.clusters) {
    out << "cluster " << c.name << (c.lb == LbPolicy::kLeastRequest ? " least-request" : "") << ":";
    for (const Endpoint& e : c.endpoints) {
      out << " " << e.address << ":" << e.port << (e.ready ? "" : "(not ready)");
    }
    out << "\n";
  }
  if (with_warnings) {
    for (const Warning& w : s.warnings) {
      out << "warning " << w.object << ": " << w.message << "\n";
    }
  }
  return out.str();
}

inline constexpr const char* kOurClass = R"(
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: sluice}
spec: {controller: sluice.dev/ingress}
)";

// A Service "web" with one unnamed port 80 and one ready endpoint, in namespace `ns`.
inline std::string webService(const std::string& ns = "t") {
  return R"(
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: )" +
         ns + R"(}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: )" +
         ns + R"(, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{port: 8080}]
)";
}

// An Ingress of class sluice in `ns` with the given `rules:` entries; `created` is its
// creationTimestamp ("" for none).
inline std::string pathsIngress(const std::string& ns, const std::string& name,
                                const std::string& created, const std::string& rules) {
  return "\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name +
         "\n  namespace: " + ns +
         (created.empty() ? std::string() : "\n  creationTimestamp: \"" + created + "\"") +
         "\nspec:\n  ingressClassName: sluice\n  rules:\n" + rules;
}

// One http.paths entry (flow style) routing to `service` port 80.
inline std::string pathLine(const std::string& path, const std::string& type,
                            const std::string& service = "web") {
  return "      - {path: " + path + ", pathType: " + type +
         ", backend: {service: {name: " + service + ", port: {number: 80}}}}\n";
}

}  // namespace sluice::model::test
