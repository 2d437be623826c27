#include "k8s/ingress_class.hpp"

namespace sluice::k8s {

bool isOurIngress(const Ingress& ingress, const Store& store, const ClassFilter& filter) {
  if (ingress.ingress_class_name) {
    auto it = store.ingressClasses().find(*ingress.ingress_class_name);
    return it != store.ingressClasses().end() && it->second.controller == filter.controller;
  }
  const auto& annotations = ingress.metadata.annotations;
  if (auto it = annotations.find(std::string(kLegacyClassAnnotation)); it != annotations.end()) {
    return it->second == filter.ingress_class;
  }
  for (const auto& [name, cls] : store.ingressClasses()) {
    if (cls.controller == filter.controller && cls.isDefault()) {
      return true;
    }
  }
  return false;
}

}  // namespace sluice::k8s
