// The desired state: what the agent should serve, as plain immutable data. Produced by the pure
// translate() from Kubernetes objects; consumed by RouteTable::compile, the balancer registry and
// (later) the BPF datapath writer. Everything is sorted so equal inputs give equal states.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cidr.hpp"
#include "k8s/problem.hpp"
#include "tls/certificate.hpp"

namespace sluice::model {

enum class PathType : std::uint8_t { kExact, kPrefix, kImplementationSpecific };
enum class LbPolicy : std::uint8_t { kRoundRobin, kLeastRequest };

// "Exact", "Prefix" or "ImplementationSpecific", as the Ingress API spells them.
constexpr std::string_view pathTypeName(PathType type) {
  switch (type) {
    case PathType::kExact:
      return "Exact";
    case PathType::kPrefix:
      return "Prefix";
    case PathType::kImplementationSpecific:
      return "ImplementationSpecific";
  }
  return "Prefix";
}

// ASCII lower-casing for host names (DNS names are ASCII; no locale involved).
inline std::string lowerAscii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

struct Endpoint {
  std::string address;  // IP literal (v4 dotted, v6 without brackets)
  std::uint16_t port = 0;
  bool ready = true;  // false means the fallback set (serving+terminating) is in use
  bool operator==(const Endpoint&) const = default;
};

// What a Service's annotations set for its clusters; 0 and "" leave the agent's defaults.
struct ClusterOptions {
  std::uint32_t max_connections = 0;       // sluice.dev/max-connections, per agent
  std::uint32_t max_pending_requests = 0;  // sluice.dev/max-pending-requests, per agent
  std::string upgrade_protocols;           // sluice.dev/upgrade-protocols; "" = websocket
  bool operator==(const ClusterOptions&) const = default;
};

// One Service port resolved to the EndpointSlice endpoints that serve it.
struct Cluster {
  std::string name;  // "namespace/service:port" (port as written in the Ingress: number or name)
  LbPolicy lb = LbPolicy::kRoundRobin;
  std::vector<Endpoint> endpoints;  // sorted, deduplicated; empty → 503
  ClusterOptions options{};
  bool operator==(const Cluster&) const = default;
};

// Who may reach a host or a TCP route (sluice.dev/allow-source-ranges, deny-source-ranges). A
// deny match refuses, even inside an allow range; with an allow list, only its ranges pass.
struct SourceRanges {
  net::CidrSet allow;
  net::CidrSet deny;
  bool allow_listed = false;  // an allow list was given (even if none of its entries parsed)
  bool empty() const noexcept { return !allow_listed && deny.empty(); }
  // Whether a client at `address` (an IP literal) may pass. No allocation.
  bool permits(std::string_view address) const noexcept {
    if (deny.containsText(address)) {
      return false;
    }
    return !allow_listed || allow.containsText(address);
  }
  bool operator==(const SourceRanges&) const = default;
};

struct PathRule {
  std::string path;  // normalized (model::normalizeRulePath); Prefix paths keep a trailing slash
  PathType type = PathType::kPrefix;
  std::string cluster;  // Cluster::name
  std::string ingress;  // "namespace/name" that contributed it, for labels and debugging
  bool operator==(const PathRule&) const = default;
};

struct VirtualHost {
  std::string host;             // lower-case; "" = rules without host; "*.example.com" = wildcard
  std::vector<PathRule> paths;  // deduplicated by (path, type): the winning Ingress's rule kept
  std::optional<std::string> default_cluster;  // defaultBackend of the Ingresses with rules here
  SourceRanges sources{};  // of the oldest Ingress with rules here that sets them; enforced in L7
  bool operator==(const VirtualHost&) const = default;
};

// A plain TCP route: connections to `port` on the agent's listen address are relayed, bytes
// untouched, to an endpoint of `cluster` (from the --tcp-services ConfigMap).
struct TcpRoute {
  std::uint16_t port = 0;
  std::string cluster;     // Cluster::name
  SourceRanges sources{};  // the annotations of the route's Service; enforced in XDP
  bool operator==(const TcpRoute&) const = default;
};

// TLS for a host, from the spec.tls of the Ingresses that list it (the oldest one's Secret wins).
struct TlsHost {
  std::string host;                 // lower-case; "*.example.com" = wildcard (one label)
  std::string secret;               // "namespace/name"; "" = the default certificate
  tls::CertificatePtr certificate;  // null: served with the default certificate (warned)
  bool ssl_redirect = true;         // plain HTTP gets a 308 to https (sluice.dev/ssl-redirect)
  std::string hsts;                 // Strict-Transport-Security value (sluice.dev/hsts); "" = none
  bool operator==(const TlsHost& o) const {
    return host == o.host && secret == o.secret && certificate == o.certificate &&
           ssl_redirect == o.ssl_redirect && hsts == o.hsts;
  }
};

// sluice.dev/ssl-passthrough: TLS connections whose SNI is `host` go, undecrypted, to `cluster`.
struct PassthroughRoute {
  std::string host;  // lower-case; "*.example.com" = wildcard
  std::string cluster;
  std::string ingress;          // "namespace/name"
  bool proxy_protocol = false;  // sluice.dev/proxy-protocol: "v2": a PROXY v2 header goes first
  SourceRanges sources{};       // the Ingress's source-range annotations (checked by SNI)
  bool operator==(const PassthroughRoute&) const = default;
};

// An object skipped or partly ignored by translate() (the sources report their own the same way).
using Warning = k8s::Problem;

struct DesiredState {
  std::uint64_t generation = 0;
  std::vector<VirtualHost> hosts;              // sorted by host
  std::optional<std::string> default_cluster;  // oldest Ingress defaultBackend of our class
  std::vector<TcpRoute> tcp_routes;            // sorted by port
  std::vector<Cluster> clusters;               // sorted by name, every name referenced above
  std::vector<TlsHost> tls_hosts;              // sorted by host
  std::vector<PassthroughRoute> passthrough;   // sorted by host
  // --default-ssl-certificate's certificate; null = the agent's own (self-signed).
  tls::CertificatePtr default_certificate;
  std::vector<Warning> warnings;      // objects skipped or partly ignored
  std::size_t refused_endpoints = 0;  // endpoint addresses the safety check refused
};

}  // namespace sluice::model
