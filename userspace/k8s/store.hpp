// The set of Kubernetes objects the agent knows, one map per kind, keyed "namespace/name" ("name"
// for IngressClass). Both the manifest source and the API-server informers fill one; translate()
// reads it. std::map keeps iteration sorted, which makes everything built from it deterministic.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "k8s/objects.hpp"

namespace sluice::k8s {

class Store {
public:
  // Adds or replaces the object with the same kind and namespace/name. Returns true if the stored
  // content changed.
  bool upsert(Object object);
  // Secrets of this store whose new version made no certificate take the certificate of the
  // same Secret in `previous` (a source that rebuilds its store keeps the last good one too).
  void keepCertificatesFrom(const Store& previous);
  // Returns true if an object was removed.
  bool remove(const ObjectRef& ref);
  bool contains(const ObjectRef& ref) const;
  void clear();
  std::size_t size() const;
  bool empty() const { return size() == 0; }

  const std::map<std::string, Ingress>& ingresses() const { return ingresses_; }
  const std::map<std::string, IngressClass>& ingressClasses() const { return ingress_classes_; }
  const std::map<std::string, Service>& services() const { return services_; }
  const std::map<std::string, EndpointSlice>& endpointSlices() const { return endpoint_slices_; }
  const std::map<std::string, Secret>& secrets() const { return secrets_; }
  const std::map<std::string, ConfigMap>& configMaps() const { return config_maps_; }

  bool operator==(const Store&) const = default;

private:
  std::map<std::string, Ingress> ingresses_;
  std::map<std::string, IngressClass> ingress_classes_;
  std::map<std::string, Service> services_;
  std::map<std::string, EndpointSlice> endpoint_slices_;
  std::map<std::string, Secret> secrets_;
  std::map<std::string, ConfigMap> config_maps_;
};

}  // namespace sluice::k8s
