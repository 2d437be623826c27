// Plain structs for the subset of the Kubernetes API Sluice reads, and one decoder from the API's
// JSON form. The decoder is shared by the manifest source and the API-server client, so it accepts
// real `kubectl get -o json|yaml` output (status, managedFields and unknown fields are ignored,
// except an Ingress's status.loadBalancer, read for the status writer) and rejects what the API
// server's validation would reject, with a message naming the field.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/fwd.hpp>

#include "common/result.hpp"
#include "tls/certificate.hpp"

namespace sluice::k8s {

inline constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";
inline constexpr std::string_view kDefaultClassAnnotation =
    "ingressclass.kubernetes.io/is-default-class";
inline constexpr std::string_view kLegacyClassAnnotation = "kubernetes.io/ingress.class";

struct ObjectMeta {
  std::string name;
  std::string ns;  // "" for cluster-scoped kinds; "default" when a namespaced manifest omits it
  std::string uid;
  std::string resource_version;       // opaque: compare for equality only
  std::string creation_timestamp;     // RFC 3339 as received, "" if absent
  std::int64_t creation_seconds = 0;  // parsed creation_timestamp (Unix seconds); 0 if absent
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  bool operator==(const ObjectMeta&) const = default;
};

// ---- networking.k8s.io/v1 Ingress ----

enum class PathType : std::uint8_t { kExact, kPrefix, kImplementationSpecific };

struct ServiceBackendPort {
  std::int32_t number = 0;  // exactly one of number (1..65535) and name is set
  std::string name;
  bool operator==(const ServiceBackendPort&) const = default;
};

struct IngressServiceBackend {
  std::string name;
  ServiceBackendPort port;
  bool operator==(const IngressServiceBackend&) const = default;
};

struct TypedLocalObjectReference {
  std::string api_group;
  std::string kind;
  std::string name;
  bool operator==(const TypedLocalObjectReference&) const = default;
};

struct IngressBackend {
  std::optional<IngressServiceBackend> service;  // exactly one of service and resource is set
  std::optional<TypedLocalObjectReference> resource;
  bool operator==(const IngressBackend&) const = default;
};

struct HttpIngressPath {
  std::string path;  // may be "" only for ImplementationSpecific
  PathType path_type = PathType::kPrefix;
  IngressBackend backend;
  bool operator==(const HttpIngressPath&) const = default;
};

struct IngressRule {
  std::string host;                    // "" = all hosts; may be "*.example.com"; case as written
  bool has_http = false;               // the API requires http.paths to be non-empty when set
  std::vector<HttpIngressPath> paths;  // http.paths
  bool operator==(const IngressRule&) const = default;
};

struct IngressTls {
  std::vector<std::string> hosts;
  std::string secret_name;  // "" = the controller's default certificate
  bool operator==(const IngressTls&) const = default;
};

// One status.loadBalancer.ingress entry: where clients reach the Ingress.
struct LoadBalancerIngress {
  std::string ip;
  std::string hostname;
  bool operator==(const LoadBalancerIngress&) const = default;
};

struct Ingress {
  ObjectMeta metadata;
  std::optional<std::string> ingress_class_name;  // an empty string decodes as absent
  std::optional<IngressBackend> default_backend;
  std::vector<IngressRule> rules;
  std::vector<IngressTls> tls;
  // status.loadBalancer.ingress as read, so the status writer can tell whether it is current.
  // Read leniently: entries that are not objects are skipped, and a bad status never fails the
  // decode (the spec is what routes).
  std::vector<LoadBalancerIngress> status_load_balancer;
  bool operator==(const Ingress&) const = default;
};

struct IngressClass {
  ObjectMeta metadata;  // cluster-scoped: metadata.ns is ""
  std::string controller;
  // The API server's admission plugin compares the annotation with exactly "true".
  bool isDefault() const;
  bool operator==(const IngressClass&) const = default;
};

// ---- v1 Service ----

// A string-or-int field (targetPort). Digit-only strings are read as numbers: a quoted "8080" in a
// manifest means the port, and a port name must contain a letter anyway.
struct IntOrString {
  std::int32_t number = 0;
  std::string name;  // non-empty = a named port
  bool isName() const { return !name.empty(); }
  bool operator==(const IntOrString&) const = default;
};

struct ServicePort {
  std::string name;  // "" if unnamed (allowed only for a single-port Service)
  std::string protocol = "TCP";
  std::int32_t port = 0;                   // 1..65535
  std::optional<IntOrString> target_port;  // absent = same as port
  bool operator==(const ServicePort&) const = default;
};

struct Service {
  ObjectMeta metadata;
  std::string type = "ClusterIP";  // ClusterIP, NodePort, LoadBalancer or ExternalName
  std::string cluster_ip;
  std::string external_name;
  std::vector<ServicePort> ports;
  bool operator==(const Service&) const = default;
};

// ---- discovery.k8s.io/v1 (and v1beta1) EndpointSlice ----

struct EndpointConditions {
  std::optional<bool> ready;        // nil = ready
  std::optional<bool> serving;      // nil = same as ready
  std::optional<bool> terminating;  // nil = not terminating
  bool operator==(const EndpointConditions&) const = default;
};

struct SliceEndpoint {
  std::vector<std::string> addresses;  // 1..100, fungible: consumers use the first
  EndpointConditions conditions;
  std::optional<std::string> node_name;  // v1 only; v1beta1's topology map is ignored
  std::optional<std::string> zone;
  bool operator==(const SliceEndpoint&) const = default;
};

struct SlicePort {
  std::string name;                  // nil and "" both decode as "" (unnamed)
  std::optional<std::int32_t> port;  // nil = "all ports"; Sluice cannot use such a port
  std::string protocol = "TCP";
  std::optional<std::string> app_protocol;
  bool operator==(const SlicePort&) const = default;
};

struct EndpointSlice {
  ObjectMeta metadata;
  std::string api_version;   // discovery.k8s.io/v1 or discovery.k8s.io/v1beta1
  std::string address_type;  // IPv4, IPv6 or FQDN
  std::vector<SliceEndpoint> endpoints;
  std::vector<SlicePort> ports;
  // The Service this slice belongs to (label kubernetes.io/service-name), "" if none.
  std::string serviceName() const;
  bool operator==(const EndpointSlice&) const = default;
};

// ---- v1 Secret ----

struct Secret {
  ObjectMeta metadata;
  std::string type = "Opaque";
  // kubernetes.io/tls: tls.crt and tls.key, parsed at decode time into OpenSSL objects; the
  // Secret's data is not kept (private keys live only in OpenSSL objects). Null with
  // `certificate_error` saying why when they do not make a usable certificate.
  tls::CertificatePtr certificate;
  std::string certificate_error;
  // A newer version that does not parse keeps serving the last good certificate: the store
  // carries it forward here (Store::upsert), and translate() reports the error beside it.
  bool certificate_kept = false;
  bool operator==(const Secret& o) const {
    return metadata == o.metadata && type == o.type &&
           (certificate ? certificate->fingerprint() : "") ==
               (o.certificate ? o.certificate->fingerprint() : "") &&
           certificate_error == o.certificate_error && certificate_kept == o.certificate_kept;
  }
};

// ---- v1 ConfigMap (only the one named by --tcp-services is used: TCP routes) ----

struct ConfigMap {
  ObjectMeta metadata;
  std::map<std::string, std::string> data;
  bool operator==(const ConfigMap&) const = default;
};

using Object = std::variant<Ingress, IngressClass, Service, EndpointSlice, Secret, ConfigMap>;

// Identity of an object: kind plus namespace/name. Versions of one kind are the same object.
struct ObjectRef {
  std::string kind;
  std::string ns;  // "" for cluster-scoped kinds
  std::string name;
  std::string key() const;      // "namespace/name", or "name" for cluster-scoped kinds
  std::string display() const;  // "Kind namespace/name", as used in warnings and errors
  auto operator<=>(const ObjectRef&) const = default;
};

struct NamespacedName {
  std::string ns;
  std::string name;
  bool operator==(const NamespacedName&) const = default;
};
// "namespace/name", as flags name a ConfigMap or a Secret; both parts non-empty, one slash.
Result<NamespacedName> parseNamespacedName(std::string_view text);

bool isClusterScoped(std::string_view kind);
std::string_view kindOf(const Object& object);
const ObjectMeta& metaOf(const Object& object);
ObjectRef refOf(const Object& object);

// Decodes one API object, dispatching on apiVersion + kind. Never throws for bad input; the error
// names the object and every field that is wrong: "Kind ns/name: field.path: what is wrong; ...".
Result<Object> decodeObject(const boost::json::value& value);

// The identity of a JSON object without validating it, so a caller can tell which object failed
// to decode. Empty if kind or metadata.name is missing.
std::optional<ObjectRef> peekRef(const boost::json::value& value);

// Unix seconds of an RFC 3339 timestamp ("2024-05-01T10:20:30Z", fractions and offsets allowed).
std::optional<std::int64_t> parseRfc3339(std::string_view text);

}  // namespace sluice::k8s
