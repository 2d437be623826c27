#include "model/translate.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include <boost/asio/ip/address.hpp>

#include "http/rewrite.hpp"

namespace sluice::model {
namespace {

std::string_view typeName(k8s::PathType type) {
  switch (type) {
    case k8s::PathType::kExact:
      return "Exact";
    case k8s::PathType::kPrefix:
      return "Prefix";
    case k8s::PathType::kImplementationSpecific:
      return "ImplementationSpecific";
  }
  return "Prefix";
}

PathType toModel(k8s::PathType type) {
  switch (type) {
    case k8s::PathType::kExact:
      return PathType::kExact;
    case k8s::PathType::kPrefix:
      return PathType::kPrefix;
    case k8s::PathType::kImplementationSpecific:
      return PathType::kImplementationSpecific;
  }
  return PathType::kPrefix;
}

// The path as RouteTable compares it: a Prefix rule's trailing slash does not matter ("/foo/" and
// "/foo" are the same rule), Exact is compared as written.
std::string normalizedPath(const std::string& path, bool exact) {
  if (path.empty()) {
    return "/";
  }
  if (!exact && path.size() > 1 && path.back() == '/') {
    return path.substr(0, path.size() - 1);
  }
  return path;
}

// Why a rule path cannot be matched, in the words of the Ingress author.
std::string_view rulePathProblem(http::PathError e) {
  switch (e) {
    case http::PathError::kNone:
      return "";
    case http::PathError::kNotOriginForm:
      return "must start with \"/\"";
    case http::PathError::kBadByte:
      return "contains a control byte, '#' or '?', which no request path can hold";
    case http::PathError::kBadEscape:
      return "has a '%' that is not followed by two hex digits";
    case http::PathError::kEscapedSlash:
      return "contains %2F or %5C, which requests may not carry (--path-escaped-slashes=reject)";
    case http::PathError::kBackslash:
      return "contains \\, which requests may not carry (--path-escaped-slashes=reject)";
    case http::PathError::kAboveRoot:
      return "climbs above \"/\" with \"..\"";
  }
  return "is invalid";
}

namespace ip = boost::asio::ip;

// An IPv4-mapped IPv6 address as the IPv4 address it carries: a socket connects to that one.
ip::address unmapped(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  }
  return a;
}

std::optional<ip::address> parseIp(const std::string& text) {
  boost::system::error_code ec;
  const ip::address a = ip::make_address(text, ec);
  if (ec) {
    return std::nullopt;
  }
  return unmapped(a);
}

// Why an endpoint address would make the agent a proxy to its own node (or to the cloud's
// metadata service next to it), or "" when it is an ordinary address. Checked on the unmapped
// address, so ::ffff:127.0.0.1 is loopback too.
std::string_view specialAddress(const ip::address& a) {
  if (a.is_v4()) {
    const ip::address_v4::bytes_type b = a.to_v4().to_bytes();
    if (b[0] == 127) {
      return "a loopback address (127.0.0.0/8, ::1), which reaches the agent's own node";
    }
    if (b[0] == 169 && b[1] == 254) {
      return "a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services "
             "answer";
    }
    if (b[0] == 0) {
      return "an unspecified address (0.0.0.0/8, ::), which reaches the agent's own node";
    }
    return "";
  }
  const ip::address_v6 v6 = a.to_v6();
  if (v6.is_loopback()) {
    return "a loopback address (127.0.0.0/8, ::1), which reaches the agent's own node";
  }
  if (v6.is_link_local()) {
    return "a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services "
           "answer";
  }
  if (v6.is_unspecified()) {
    return "an unspecified address (0.0.0.0/8, ::), which reaches the agent's own node";
  }
  return "";
}

}  // namespace

Result<std::string> normalizeRulePath(std::string_view path, const http::PathOptions& options) {
  if (path.empty()) {
    return std::string("/");
  }
  // A path written with raw UTF-8 or spaces names what a client sends percent-encoded.
  std::string encoded;
  encoded.reserve(path.size());
  for (const char c : path) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == ' ' || byte >= 0x80) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      encoded.push_back('%');
      encoded.push_back(kHex[byte >> 4]);
      encoded.push_back(kHex[byte & 0x0f]);
    } else {
      encoded.push_back(c);
    }
  }
  if (encoded == "*") {
    return Error(std::string(rulePathProblem(http::PathError::kNotOriginForm)));
  }
  std::string out(encoded.size(), '\0');
  std::size_t len = 0;
  if (const http::PathError e = http::normalizePath(encoded, options, out.data(), len);
      e != http::PathError::kNone) {
    return Error(std::string(rulePathProblem(e)));
  }
  out.resize(len);
  return out;
}

namespace {

std::string ingressKey(const k8s::Ingress& ing) {
  return ing.metadata.ns + "/" + ing.metadata.name;
}

std::string hostLabel(const std::string& host) {
  return host.empty() ? std::string("(any host)") : "\"" + host + "\"";
}

struct ClusterRef {
  std::string ns;
  k8s::IngressServiceBackend backend;
  std::string referrer;  // "Ingress ns/name" of the oldest Ingress using it, for warnings
};

struct HostBuild {
  std::vector<PathRule> paths;
  std::map<std::pair<std::string, bool>, std::string> owners;  // (path, exact) → "ns/name"
  std::optional<std::string> default_cluster;
  SourceRanges sources;
  std::string sources_from;  // "ns/name" of the Ingress that set `sources`
};

class Translator {
public:
  Translator(const k8s::Store& store, const TranslateOptions& options)
      : store_(store), options_(options) {
    for (const std::string& text : options_.node_addresses) {
      if (std::optional<ip::address> a = parseIp(text)) {
        node_addresses_.push_back(*a);
      }
    }
  }

  DesiredState run() {
    std::vector<const k8s::Ingress*> ours;
    for (const auto& [key, ing] : store_.ingresses()) {
      if (k8s::isOurIngress(ing, store_, options_.classes)) {
        ours.push_back(&ing);
      } else if (ing.ingress_class_name &&
                 *ing.ingress_class_name == options_.classes.ingress_class &&
                 !store_.ingressClasses().contains(*ing.ingress_class_name)) {
        // Not another controller's Ingress: most likely our IngressClass was never created.
        warn("Ingress " + key, "IngressClass " + *ing.ingress_class_name +
                                   " not found; Ingress ignored until it exists with controller " +
                                   options_.classes.controller);
      }
    }
    // Oldest first; namespace/name breaks ties so the order never depends on the input order.
    std::sort(ours.begin(), ours.end(), [](const k8s::Ingress* a, const k8s::Ingress* b) {
      return std::tie(a->metadata.creation_seconds, a->metadata.ns, a->metadata.name) <
             std::tie(b->metadata.creation_seconds, b->metadata.ns, b->metadata.name);
    });
    if (options_.host_ownership == HostOwnership::kFirst) {
      for (const k8s::Ingress* ing : ours) {
        for (const k8s::IngressRule& rule : ing->rules) {
          host_owners_.try_emplace(lowerAscii(rule.host), ing);
        }
      }
    }
    for (const k8s::Ingress* ing : ours) {
      addIngress(*ing);
    }
    for (auto& [host, build] : hosts_) {
      out_.hosts.push_back(VirtualHost{host, std::move(build.paths), build.default_cluster,
                                       std::move(build.sources)});
    }
    for (auto& [host, t] : tls_) {
      out_.tls_hosts.push_back(std::move(t));
    }
    for (auto& [host, p] : passthrough_) {
      out_.passthrough.push_back(std::move(p));
    }
    if (!options_.default_ssl_certificate.empty()) {
      out_.default_certificate =
          certificateOf("--default-ssl-certificate", "Secret", options_.default_ssl_certificate);
    }
    addTcpRoutes();
    for (const auto& [name, ref] : clusters_) {
      out_.clusters.push_back(resolve(name, ref));
    }
    out_.refused_endpoints = refused_.size();
    return std::move(out_);
  }

private:
  void warn(std::string object, std::string message) {
    if (warned_.emplace(object, message).second) {
      out_.warnings.push_back(Warning{std::move(object), std::move(message)});
    }
  }

  // Only backends that end up referenced are registered, so `clusters` holds exactly those.
  const std::string& useCluster(const k8s::Ingress& ing,
                                const k8s::IngressServiceBackend& backend) {
    std::string name = clusterName(ing.metadata.ns, backend);
    auto it = clusters_.find(name);
    if (it == clusters_.end()) {
      it = clusters_
               .emplace(std::move(name),
                        ClusterRef{ing.metadata.ns, backend, "Ingress " + ingressKey(ing)})
               .first;
    }
    return it->first;
  }

  // One route per valid "port": "namespace/service:port" entry; a bad entry is skipped with a
  // warning and never affects the others.
  void addTcpRoutes() {
    if (options_.tcp_services.empty()) {
      return;
    }
    auto it = store_.configMaps().find(options_.tcp_services);
    if (it == store_.configMaps().end()) {
      return;
    }
    const std::string object = "ConfigMap " + options_.tcp_services;
    for (const auto& [key, value] : it->second.data) {
      const std::string where = "data[\"" + key + "\"]";
      std::uint16_t port = 0;
      auto [pend, pec] = std::from_chars(key.data(), key.data() + key.size(), port);
      if (pec != std::errc() || pend != key.data() + key.size() || port == 0 ||
          key.front() == '0') {
        warn(object, where + ": key must be a port number 1-65535; skipped");
        continue;
      }
      if (std::find(options_.reserved_ports.begin(), options_.reserved_ports.end(), port) !=
          options_.reserved_ports.end()) {
        warn(object, where + ": port " + key + " is the agent's own listener; skipped");
        continue;
      }
      // "namespace/service:port"; the port is a number or a Service port name.
      const auto slash = value.find('/');
      const auto colon = value.rfind(':');
      if (slash == std::string::npos || colon == std::string::npos || colon < slash || slash == 0 ||
          colon == slash + 1 || colon + 1 == value.size() ||
          value.find('/', slash + 1) != std::string::npos) {
        warn(object, where + ": value must be \"namespace/service:port\"; skipped");
        continue;
      }
      k8s::IngressServiceBackend backend;
      backend.name = value.substr(slash + 1, colon - slash - 1);
      const std::string svc_port = value.substr(colon + 1);
      std::int32_t number = 0;
      auto [nend, nec] =
          std::from_chars(svc_port.data(), svc_port.data() + svc_port.size(), number);
      if (nec == std::errc() && nend == svc_port.data() + svc_port.size()) {
        if (number < 1 || number > 65535) {
          warn(object, where + ": service port " + svc_port + " out of range; skipped");
          continue;
        }
        backend.port.number = number;
      } else {
        backend.port.name = svc_port;
      }
      const std::string ns = value.substr(0, slash);
      std::string name = clusterName(ns, backend);
      auto cit = clusters_.find(name);
      if (cit == clusters_.end()) {
        cit = clusters_.emplace(std::move(name), ClusterRef{ns, backend, object}).first;
      }
      auto svc = store_.services().find(ns + "/" + backend.name);
      SourceRanges sources;
      if (svc != store_.services().end()) {
        sources = sourceRanges(svc->second.metadata, "Service " + svc->first);
      }
      out_.tcp_routes.push_back(TcpRoute{port, cit->first, std::move(sources)});
    }
    std::sort(out_.tcp_routes.begin(), out_.tcp_routes.end(),
              [](const TcpRoute& a, const TcpRoute& b) { return a.port < b.port; });
  }

  // With --host-ownership=first, the oldest Ingress with a rule for `host` when it is in another
  // namespace than `ing` (whose rules for the host are then refused); else nullptr.
  const k8s::Ingress* foreignOwner(const k8s::Ingress& ing, const std::string& host) const {
    auto it = host_owners_.find(host);
    if (it == host_owners_.end() || it->second->metadata.ns == ing.metadata.ns) {
      return nullptr;
    }
    return it->second;
  }

  void addIngress(const k8s::Ingress& ing) {
    const std::string key = ingressKey(ing);
    const std::string object = "Ingress " + key;
    const k8s::IngressServiceBackend* own_default = nullptr;
    if (ing.default_backend) {
      if (ing.default_backend->service) {
        own_default = &*ing.default_backend->service;
      } else {
        warn(object, "spec.defaultBackend: resource backends are not supported; ignored");
      }
    }
    const SourceRanges sources = sourceRanges(ing.metadata, object);
    bool default_used = false;
    if (own_default != nullptr && !out_.default_cluster) {
      out_.default_cluster = useCluster(ing, *own_default);
      default_used = true;
    }
    for (std::size_t i = 0; i < ing.rules.size(); ++i) {
      const k8s::IngressRule& rule = ing.rules[i];
      const std::string host = lowerAscii(rule.host);
      if (const k8s::Ingress* owner = foreignOwner(ing, host)) {
        warn(object, "spec.rules[" + std::to_string(i) + "] refused: host " + hostLabel(host) +
                         " belongs to namespace " + owner->metadata.ns + " (its oldest Ingress " +
                         ingressKey(*owner) + "); --host-ownership=first");
        continue;
      }
      HostBuild& build = hosts_[host];
      addSources(build, host, sources, key, object);
      if (own_default != nullptr && !build.default_cluster) {
        build.default_cluster = useCluster(ing, *own_default);
        default_used = true;
      }
      for (std::size_t j = 0; j < rule.paths.size(); ++j) {
        const k8s::HttpIngressPath& p = rule.paths[j];
        const std::string where =
            "spec.rules[" + std::to_string(i) + "].http.paths[" + std::to_string(j) + "]";
        if (!p.backend.service) {
          warn(object, where + ".backend: resource backends are not supported; ignored");
          continue;
        }
        const bool exact = p.path_type == k8s::PathType::kExact;
        // Rule paths are normalized like request paths, so "/caf%c3%a9" matches what a client
        // sends for it, and a path no request can carry is reported instead of never matching.
        Result<std::string> normalized = normalizeRulePath(p.path, options_.paths);
        if (!normalized) {
          warn(object, where + ".path \"" + p.path + "\" " + normalized.error().message() +
                           "; rule skipped");
          continue;
        }
        const std::string& path = *normalized;
        auto [owner, inserted] =
            build.owners.try_emplace({normalizedPath(path, exact), exact}, key);
        if (!inserted) {
          warn(object, where + ": host " + hostLabel(host) + " path \"" + path + "\" (" +
                           std::string(typeName(p.path_type)) + ") is shadowed by " +
                           owner->second);
          continue;
        }
        build.paths.push_back(
            PathRule{path, toModel(p.path_type), useCluster(ing, *p.backend.service), key});
      }
    }
    if (own_default != nullptr && !default_used) {
      warn(object, "spec.defaultBackend is shadowed by the default backends of older Ingresses");
    }
    addTls(ing, object);
    if (annotation(ing, kSslPassthroughAnnotation) == "true") {
      addPassthrough(ing, key, object, sources);
    }
  }

  // A host's source ranges come from the oldest Ingress with rules for it that sets them; a
  // newer one that sets others is warned about (its ranges would be silently ignored otherwise).
  void addSources(HostBuild& build, const std::string& host, const SourceRanges& sources,
                  const std::string& key, const std::string& object) {
    if (sources.empty()) {
      return;
    }
    if (build.sources_from.empty()) {
      build.sources = sources;
      build.sources_from = key;
    } else if (build.sources != sources) {
      warn(object, "source ranges for host " + hostLabel(host) + " ignored: Ingress " +
                       build.sources_from + " (older) sets them");
    }
  }

  // The comma-separated CIDRs of annotation `name`; a bad entry is warned about and skipped.
  std::vector<net::Cidr> cidrList(const k8s::ObjectMeta& meta, std::string_view name,
                                  const std::string& object, bool& given) {
    std::vector<net::Cidr> out;
    auto it = meta.annotations.find(std::string(name));
    if (it == meta.annotations.end()) {
      return out;
    }
    std::string_view rest = it->second;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      std::string_view entry = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t')) {
        entry.remove_prefix(1);
      }
      while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) {
        entry.remove_suffix(1);
      }
      if (entry.empty()) {
        continue;
      }
      given = true;
      Result<net::Cidr> cidr = net::parseCidr(entry);
      if (!cidr) {
        warn(object,
             "annotation " + std::string(name) + ": " + cidr.error().message() + "; entry skipped");
        continue;
      }
      if (std::find(out.begin(), out.end(), *cidr) == out.end()) {
        out.push_back(*cidr);
      }
    }
    return out;
  }

  // sluice.dev/allow-source-ranges and deny-source-ranges of an Ingress or a Service.
  SourceRanges sourceRanges(const k8s::ObjectMeta& meta, const std::string& object) {
    SourceRanges out;
    bool denied = false;
    out.allow =
        net::CidrSet(cidrList(meta, kAllowSourceRangesAnnotation, object, out.allow_listed));
    out.deny = net::CidrSet(cidrList(meta, kDenySourceRangesAnnotation, object, denied));
    if (out.allow_listed && out.allow.empty()) {
      warn(object, "annotation " + std::string(kAllowSourceRangesAnnotation) +
                       ": no valid range; no client may connect");
    }
    return out;
  }

  static std::string annotation(const k8s::Ingress& ing, std::string_view name) {
    auto it = ing.metadata.annotations.find(std::string(name));
    return it == ing.metadata.annotations.end() ? std::string() : it->second;
  }

  // The certificate of TLS Secret `secret_key`, or null with a warning saying why the hosts
  // that name it are served with the default certificate.
  tls::CertificatePtr certificateOf(const std::string& object, const std::string& where,
                                    const std::string& secret_key) {
    auto it = store_.secrets().find(secret_key);
    if (it == store_.secrets().end()) {
      warn(object, where + ": Secret " + secret_key +
                       " not found; its hosts use the default "
                       "certificate");
      return nullptr;
    }
    const k8s::Secret& secret = it->second;
    if (secret.type != "kubernetes.io/tls") {
      warn(object, where + ": Secret " + secret_key + " has type " + secret.type +
                       ", want kubernetes.io/tls; its hosts use the default certificate");
      return nullptr;
    }
    if (!secret.certificate_error.empty()) {
      warn("Secret " + secret_key,
           secret.certificate_error + (secret.certificate_kept
                                           ? "; the last good certificate keeps serving"
                                           : "; its hosts use the default certificate"));
    }
    return secret.certificate;
  }

  // sluice.dev/hsts: printable ASCII without quotes or backslashes, starting "max-age=", at
  // most 256 bytes; it goes into a response header as it is.
  std::string hstsValue(const k8s::Ingress& ing, const std::string& object) {
    const std::string value = annotation(ing, kHstsAnnotation);
    bool ok = value.size() <= 256 && value.starts_with("max-age=");
    for (const char c : value) {
      ok = ok && c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
    }
    if (!value.empty() && !ok) {
      warn(object, "annotation " + std::string(kHstsAnnotation) +
                       ": want \"max-age=SECONDS[; includeSubDomains][; preload]\"; ignored");
      return {};
    }
    return value;
  }

  void addTls(const k8s::Ingress& ing, const std::string& object) {
    const std::string redirect = annotation(ing, kSslRedirectAnnotation);
    if (!redirect.empty() && redirect != "true" && redirect != "false") {
      warn(object, "annotation " + std::string(kSslRedirectAnnotation) +
                       ": want \"true\" or "
                       "\"false\"; using true");
    }
    const std::string hsts = ing.tls.empty() ? std::string() : hstsValue(ing, object);
    for (std::size_t i = 0; i < ing.tls.size(); ++i) {
      const std::string where = "spec.tls[" + std::to_string(i) + "]";
      const std::string& name = ing.tls[i].secret_name;
      const std::string secret_key = name.empty() ? std::string() : ing.metadata.ns + "/" + name;
      tls::CertificatePtr cert = name.empty() ? nullptr : certificateOf(object, where, secret_key);
      for (const std::string& raw : ing.tls[i].hosts) {
        const std::string host = lowerAscii(raw);
        auto [it, inserted] =
            tls_.try_emplace(host, TlsHost{host, secret_key, cert, redirect != "false", hsts});
        if (!inserted && it->second.secret != secret_key) {
          warn(object, where + ": host " + host + " already has TLS from " +
                           (it->second.secret.empty() ? "the default certificate"
                                                      : "Secret " + it->second.secret) +
                           " (an older Ingress); ignored");
        }
      }
    }
  }

  // Passthrough: each rule's host goes by SNI to the backend of its path "/".
  void addPassthrough(const k8s::Ingress& ing, const std::string& key, const std::string& object,
                      const SourceRanges& sources) {
    const std::string proxy = annotation(ing, kProxyProtocolAnnotation);
    if (!proxy.empty() && proxy != "v2") {
      warn(object, "annotation " + std::string(kProxyProtocolAnnotation) +
                       ": want \"v2\"; no PROXY header is sent");
    }
    for (std::size_t i = 0; i < ing.rules.size(); ++i) {
      const k8s::IngressRule& rule = ing.rules[i];
      const std::string where = "spec.rules[" + std::to_string(i) + "]";
      if (rule.host.empty()) {
        warn(object, where + ": ssl-passthrough needs a host (it routes by SNI); skipped");
        continue;
      }
      const k8s::IngressServiceBackend* backend = nullptr;
      for (const k8s::HttpIngressPath& p : rule.paths) {
        if ((p.path.empty() || p.path == "/") && p.backend.service) {
          backend = &*p.backend.service;
          break;
        }
      }
      if (backend == nullptr) {
        warn(object, where + ": ssl-passthrough uses the backend of path \"/\"; none; skipped");
        continue;
      }
      const std::string host = lowerAscii(rule.host);
      auto [it, inserted] = passthrough_.try_emplace(
          host, PassthroughRoute{host, useCluster(ing, *backend), key, proxy == "v2", sources});
      if (!inserted && it->second.ingress != key) {
        warn(object, where + ": host " + host + " is already passed through by Ingress " +
                         it->second.ingress + "; skipped");
      }
    }
  }

  LbPolicy lbPolicy(const k8s::Service& svc) {
    auto it = svc.metadata.annotations.find(std::string(kLoadBalanceAnnotation));
    if (it == svc.metadata.annotations.end() || it->second == "round-robin") {
      return LbPolicy::kRoundRobin;
    }
    if (it->second == "least-request") {
      return LbPolicy::kLeastRequest;
    }
    warn("Service " + svc.metadata.ns + "/" + svc.metadata.name,
         "annotation " + std::string(kLoadBalanceAnnotation) + ": unknown value \"" + it->second +
             "\" (want round-robin or least-request); using round-robin");
    return LbPolicy::kRoundRobin;
  }

  // A limit annotation: a whole number from 1 to 1,000,000; anything else is ignored with a
  // warning (the agent's default applies).
  std::uint32_t limitAnnotation(const k8s::Service& svc, std::string_view annotation) {
    auto it = svc.metadata.annotations.find(std::string(annotation));
    if (it == svc.metadata.annotations.end()) {
      return 0;
    }
    const std::string& text = it->second;
    std::uint32_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 1'000'000) {
      warn("Service " + svc.metadata.ns + "/" + svc.metadata.name,
           "annotation " + std::string(annotation) + ": \"" + text +
               "\" is not a whole number from 1 to 1000000; using the agent's default");
      return 0;
    }
    return value;
  }

  ClusterOptions clusterOptions(const k8s::Service& svc) {
    ClusterOptions options;
    options.max_connections = limitAnnotation(svc, kMaxConnectionsAnnotation);
    options.max_pending_requests = limitAnnotation(svc, kMaxPendingAnnotation);
    auto it = svc.metadata.annotations.find(std::string(kUpgradeProtocolsAnnotation));
    if (it != svc.metadata.annotations.end()) {
      if (http::validUpgradeProtocols(it->second)) {
        options.upgrade_protocols = it->second;
      } else {
        warn("Service " + svc.metadata.ns + "/" + svc.metadata.name,
             "annotation " + std::string(kUpgradeProtocolsAnnotation) + ": \"" + it->second +
                 "\" is not a comma-separated list of protocol tokens; allowing websocket only");
      }
    }
    return options;
  }

  Cluster resolve(const std::string& name, const ClusterRef& ref) {
    Cluster cluster;
    cluster.name = name;
    const std::string svc_key = ref.ns + "/" + ref.backend.name;
    auto svc_it = store_.services().find(svc_key);
    if (svc_it == store_.services().end()) {
      warn(ref.referrer, "backend " + name + ": Service " + svc_key + " not found");
      return cluster;
    }
    const k8s::Service& svc = svc_it->second;
    cluster.lb = lbPolicy(svc);
    cluster.options = clusterOptions(svc);
    if (svc.type == "ExternalName") {
      warn(ref.referrer, "backend " + name + ": Service " + svc_key +
                             " is of type ExternalName, which has no endpoints to route to");
      return cluster;
    }
    const k8s::ServicePort* port = nullptr;
    for (const k8s::ServicePort& p : svc.ports) {
      // port.number matches the Service port (not targetPort); port.name the port's name.
      if (ref.backend.port.name.empty() ? p.port == ref.backend.port.number
                                        : p.name == ref.backend.port.name) {
        port = &p;
        break;
      }
    }
    if (port == nullptr) {
      const std::string wanted = ref.backend.port.name.empty()
                                     ? std::to_string(ref.backend.port.number)
                                     : "named \"" + ref.backend.port.name + "\"";
      warn(ref.referrer, "backend " + name + ": Service " + svc_key + " has no port " + wanted);
      return cluster;
    }
    if (port->protocol != "TCP") {
      warn(ref.referrer, "backend " + name + ": Service port uses " + port->protocol + ", not TCP");
      return cluster;
    }
    cluster.endpoints = endpoints(svc, *port);
    return cluster;
  }

  // The endpoint safety check (options_.restrict_endpoints): whether `address` of `slice` may be
  // an endpoint. A refused address is reported once per slice and counted once per slice.
  bool admitEndpoint(const k8s::EndpointSlice& slice, const std::string& svc_key,
                     const std::string& address) {
    if (!options_.restrict_endpoints || options_.allowed_endpoints.containsText(address)) {
      return true;
    }
    std::string_view why;
    const std::optional<ip::address> parsed = parseIp(address);
    if (!parsed) {
      why = "not an IP address";
    } else {
      why = specialAddress(*parsed);
      if (why.empty() && std::find(node_addresses_.begin(), node_addresses_.end(), *parsed) !=
                             node_addresses_.end()) {
        why = "an address of the agent's own node";
      }
    }
    if (why.empty()) {
      return true;
    }
    const std::string slice_key = slice.metadata.ns + "/" + slice.metadata.name;
    refused_.emplace(slice_key, address);
    warn("EndpointSlice " + slice_key, "endpoint " + address + " of Service " + svc_key +
                                           " refused: " + std::string(why) +
                                           "; --allow-endpoint-cidrs can allow it");
    return false;
  }

  // The endpoints of `svc`'s `port` from its EndpointSlices, sorted, without refused addresses.
  std::vector<Endpoint> endpoints(const k8s::Service& svc, const k8s::ServicePort& port) {
    const std::string svc_key = svc.metadata.ns + "/" + svc.metadata.name;
    // The slice controller resolves targetPort per pod, so each slice carries its own number for
    // the port named like the ServicePort ("" for an unnamed one).
    std::set<std::pair<std::string, std::uint16_t>> ready;
    std::set<std::pair<std::string, std::uint16_t>> fallback;
    const std::string prefix = svc.metadata.ns + "/";
    const auto& slices = store_.endpointSlices();
    for (auto it = slices.lower_bound(prefix); it != slices.end() && it->first.starts_with(prefix);
         ++it) {
      const k8s::EndpointSlice& slice = it->second;
      if (slice.serviceName() != svc.metadata.name ||
          (slice.address_type != "IPv4" && slice.address_type != "IPv6")) {
        continue;
      }
      const k8s::SlicePort* slice_port = nullptr;
      for (const k8s::SlicePort& sp : slice.ports) {
        if (sp.name == port.name) {
          slice_port = &sp;
          break;
        }
      }
      if (slice_port == nullptr || !slice_port->port || *slice_port->port < 1 ||
          *slice_port->port > 65535) {
        continue;
      }
      const auto number = static_cast<std::uint16_t>(*slice_port->port);
      for (const k8s::SliceEndpoint& ep : slice.endpoints) {
        if (ep.addresses.empty() || !admitEndpoint(slice, svc_key, ep.addresses.front())) {
          continue;
        }
        const bool is_ready = ep.conditions.ready.value_or(true);
        const bool serving = ep.conditions.serving.value_or(is_ready);
        const bool terminating = ep.conditions.terminating.value_or(false);
        if (is_ready) {
          ready.emplace(ep.addresses.front(), number);
        } else if (serving && terminating) {
          fallback.emplace(ep.addresses.front(), number);
        }
      }
    }
    // kube-proxy's rule: ready endpoints; only when there are none, the ones still serving while
    // terminating (so a rolling update with slow readiness does not 503).
    const bool use_ready = !ready.empty();
    std::vector<Endpoint> out;
    for (const auto& [address, number] : use_ready ? ready : fallback) {
      out.push_back(Endpoint{address, number, use_ready});
    }
    return out;
  }

  const k8s::Store& store_;
  const TranslateOptions& options_;
  DesiredState out_;
  std::map<std::string, HostBuild> hosts_;
  std::map<std::string, TlsHost> tls_;                   // by host
  std::map<std::string, PassthroughRoute> passthrough_;  // by host
  // --host-ownership=first: host → the oldest Ingress with a rule for it. A wildcard
  // ("*.example.com") and "" (rules without a host) are host keys of their own.
  std::map<std::string, const k8s::Ingress*> host_owners_;
  std::map<std::string, ClusterRef> clusters_;
  std::set<std::pair<std::string, std::string>> warned_;
  std::vector<ip::address> node_addresses_;                // options_.node_addresses, parsed
  std::set<std::pair<std::string, std::string>> refused_;  // (slice "ns/name", address)
};

}  // namespace

std::string clusterName(const std::string& ns, const k8s::IngressServiceBackend& backend) {
  return ns + "/" + backend.name + ":" +
         (backend.port.name.empty() ? std::to_string(backend.port.number) : backend.port.name);
}

DesiredState translate(const k8s::Store& store, const TranslateOptions& options) {
  return Translator(store, options).run();
}

}  // namespace sluice::model
