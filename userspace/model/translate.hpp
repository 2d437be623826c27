// translate(): Kubernetes objects → DesiredState. A pure, deterministic function of the store, so
// both sources (API server, manifests) and the tests share one definition of Ingress semantics.
//
// Routing semantics encoded in the result (RouteTable implements them):
// - Hosts are lower-cased; the rules of all our Ingresses are merged per host. Ingresses are
//   ordered oldest first (creationTimestamp, then namespace, then name); when two rules have the
//   same host, normalized path and type, the oldest wins and the other gets a "shadowed" warning.
// - ImplementationSpecific is treated as Prefix (also for duplicate detection); an empty
//   ImplementationSpecific path means "/".
// - Rule paths are normalized like request paths (normalizeRulePath); a path that no request
//   could match is skipped with a warning.
// - A request that matches no path of its host bucket goes to that host's default backend (the
//   defaultBackend of the oldest Ingress that has one among those with rules for the host), else
//   to the global default backend (oldest Ingress of our class with one), else 404.
// - HostOwnership::kFirst: a host belongs to the namespace of the oldest Ingress with a rule for
//   it; rules of other namespaces' Ingresses for it (and with them their defaultBackend's claim
//   on the host) are refused with a warning. Host keys compare exactly: "*.example.com",
//   "a.example.com" and "" (no host) are three hosts with owners of their own.
// - Endpoint safety (restrict_endpoints): loopback, link-local, unspecified (also IPv4-mapped)
//   and node addresses are left out of their cluster with a warning on the EndpointSlice unless
//   allowed_endpoints contains them; DesiredState::refused_endpoints counts them.
#pragma once

#include <string>
#include <string_view>

#include "common/cidr.hpp"
#include "common/result.hpp"
#include "http/normalize.hpp"
#include "k8s/ingress_class.hpp"
#include "k8s/objects.hpp"
#include "k8s/store.hpp"
#include "model/desired_state.hpp"

namespace sluice::model {

inline constexpr std::string_view kLoadBalanceAnnotation = "sluice.dev/load-balance";
inline constexpr std::string_view kMaxConnectionsAnnotation = "sluice.dev/max-connections";
inline constexpr std::string_view kMaxPendingAnnotation = "sluice.dev/max-pending-requests";
inline constexpr std::string_view kUpgradeProtocolsAnnotation = "sluice.dev/upgrade-protocols";
inline constexpr std::string_view kSslRedirectAnnotation = "sluice.dev/ssl-redirect";
inline constexpr std::string_view kHstsAnnotation = "sluice.dev/hsts";
inline constexpr std::string_view kSslPassthroughAnnotation = "sluice.dev/ssl-passthrough";
inline constexpr std::string_view kProxyProtocolAnnotation = "sluice.dev/proxy-protocol";
// Comma-separated CIDRs: on an Ingress, for its hosts (403 from the agent); on the Service of a
// TCP route, for that port (dropped in XDP by the front door). A bad entry is warned and skipped.
inline constexpr std::string_view kAllowSourceRangesAnnotation = "sluice.dev/allow-source-ranges";
inline constexpr std::string_view kDenySourceRangesAnnotation = "sluice.dev/deny-source-ranges";

// Who may add rules for a host (--host-ownership).
enum class HostOwnership : std::uint8_t {
  kShared,  // every Ingress of our class, merged (the Ingress API's own semantics)
  kFirst,   // the namespace of the oldest Ingress with a rule for the host; others are refused
};

struct TranslateOptions {
  k8s::ClassFilter classes;  // which Ingresses are ours
  // ConfigMap "namespace/name" whose data maps a listener port to "namespace/service:port"
  // (the ingress-nginx tcp-services format); "" = no TCP routes.
  std::string tcp_services = "sluice-system/sluice-tcp-services";
  // Ports the agent serves otherwise (HTTP, admin): a TCP route cannot take them.
  std::vector<std::uint16_t> reserved_ports;
  // How request paths are normalized (--path-escaped-slashes): rule paths follow the same rules.
  http::PathOptions paths{};
  HostOwnership host_ownership = HostOwnership::kShared;
  // Endpoint safety (API mode): an endpoint address that is loopback (127.0.0.0/8, ::1),
  // link-local (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0/8, ::), one of those
  // IPv4-mapped, or one of `node_addresses`, is refused with a warning unless
  // `allowed_endpoints` contains it: whoever may write an EndpointSlice must not reach the
  // node's own services through the agent (CVE-2021-25740). Off for manifests, whose author is
  // the operator.
  bool restrict_endpoints = false;
  net::CidrSet allowed_endpoints;           // --allow-endpoint-cidrs
  std::vector<std::string> node_addresses;  // the node's own IP addresses (IP literals)
  std::string default_ssl_certificate;      // "namespace/name" of a TLS Secret; "" = none
};

// A rule path as the route table compares it: raw bytes >= 0x80 and spaces percent-encoded, then
// http::normalizePath with `options` ("" is "/"). An error says why no request could match it.
Result<std::string> normalizeRulePath(std::string_view path, const http::PathOptions& options);

// The cluster name for a service backend of an Ingress in `ns`: "ns/service:port", with the port
// as written (number or name).
std::string clusterName(const std::string& ns, const k8s::IngressServiceBackend& backend);

// generation is left 0: the caller numbers the states it publishes.
DesiredState translate(const k8s::Store& store, const TranslateOptions& options);

}  // namespace sluice::model
