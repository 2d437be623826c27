#include "k8s/store.hpp"

#include <type_traits>

namespace sluice::k8s {
namespace {

template <typename T>
bool put(std::map<std::string, T>& map, std::string key, T&& object) {
  auto it = map.find(key);
  if (it == map.end()) {
    map.emplace(std::move(key), std::move(object));
    return true;
  }
  if (it->second == object) {
    return false;
  }
  it->second = std::move(object);
  return true;
}

// A new version of a TLS Secret that does not make a certificate keeps the last good one
// serving (issue 11); translate() reports the new version's error beside it.
void keepCertificate(const Secret& previous, Secret& next) {
  if (!next.certificate && !next.certificate_error.empty() && previous.certificate) {
    next.certificate = previous.certificate;
    next.certificate_kept = true;
  }
}

}  // namespace

void Store::keepCertificatesFrom(const Store& previous) {
  for (auto& [key, secret] : secrets_) {
    if (auto it = previous.secrets_.find(key); it != previous.secrets_.end()) {
      keepCertificate(it->second, secret);
    }
  }
}

bool Store::upsert(Object object) {
  std::string key = refOf(object).key();
  return std::visit(
      [&](auto&& o) -> bool {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, Ingress>) {
          return put(ingresses_, std::move(key), std::move(o));
        } else if constexpr (std::is_same_v<T, IngressClass>) {
          return put(ingress_classes_, std::move(key), std::move(o));
        } else if constexpr (std::is_same_v<T, Service>) {
          return put(services_, std::move(key), std::move(o));
        } else if constexpr (std::is_same_v<T, EndpointSlice>) {
          return put(endpoint_slices_, std::move(key), std::move(o));
        } else if constexpr (std::is_same_v<T, Secret>) {
          if (auto it = secrets_.find(key); it != secrets_.end()) {
            keepCertificate(it->second, o);
          }
          return put(secrets_, std::move(key), std::move(o));
        } else {
          static_assert(std::is_same_v<T, ConfigMap>);
          return put(config_maps_, std::move(key), std::move(o));
        }
      },
      std::move(object));
}

bool Store::remove(const ObjectRef& ref) {
  const std::string key = ref.key();
  if (ref.kind == "Ingress") {
    return ingresses_.erase(key) > 0;
  }
  if (ref.kind == "IngressClass") {
    return ingress_classes_.erase(key) > 0;
  }
  if (ref.kind == "Service") {
    return services_.erase(key) > 0;
  }
  if (ref.kind == "EndpointSlice") {
    return endpoint_slices_.erase(key) > 0;
  }
  if (ref.kind == "Secret") {
    return secrets_.erase(key) > 0;
  }
  if (ref.kind == "ConfigMap") {
    return config_maps_.erase(key) > 0;
  }
  return false;
}

bool Store::contains(const ObjectRef& ref) const {
  const std::string key = ref.key();
  if (ref.kind == "Ingress") {
    return ingresses_.contains(key);
  }
  if (ref.kind == "IngressClass") {
    return ingress_classes_.contains(key);
  }
  if (ref.kind == "Service") {
    return services_.contains(key);
  }
  if (ref.kind == "EndpointSlice") {
    return endpoint_slices_.contains(key);
  }
  if (ref.kind == "Secret") {
    return secrets_.contains(key);
  }
  if (ref.kind == "ConfigMap") {
    return config_maps_.contains(key);
  }
  return false;
}

void Store::clear() {
  *this = Store();
}

std::size_t Store::size() const {
  return ingresses_.size() + ingress_classes_.size() + services_.size() + endpoint_slices_.size() +
         secrets_.size() + config_maps_.size();
}

}  // namespace sluice::k8s
