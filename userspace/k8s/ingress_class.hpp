// Which Ingresses are ours: the class rules shared by translate() (what to route) and the status
// writer (what to publish an address on), so the two can never disagree.
#pragma once

#include <string>

#include "k8s/objects.hpp"
#include "k8s/store.hpp"

namespace sluice::k8s {

struct ClassFilter {
  std::string ingress_class = "sluice";           // for the legacy kubernetes.io/ingress.class
  std::string controller = "sluice.dev/ingress";  // IngressClass spec.controller that is ours
};

// Whether we serve `ingress`. Every IngressClass whose spec.controller is ours counts (so two
// agents in one cluster need two controller values, as with other controllers). An Ingress is ours
// if spec.ingressClassName names such a class; or, without ingressClassName, if the legacy
// annotation equals filter.ingress_class; or, with neither, if one of our classes is marked
// is-default-class. ingressClassName wins over the annotation.
bool isOurIngress(const Ingress& ingress, const Store& store, const ClassFilter& filter);

}  // namespace sluice::k8s
