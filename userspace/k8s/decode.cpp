// decodeObject(): JSON → k8s structs with the API server's validation for the fields we use.
// Only Boost.JSON's non-throwing accessors are used, so hostile input cannot throw out of here.
#include <arpa/inet.h>

#include <cmath>
#include <ctime>
#include <limits>
#include <set>

#include <boost/json.hpp>

#include "k8s/objects.hpp"

namespace sluice::k8s {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxErrors = 8;

std::string child(const std::string& path, std::string_view key) {
  std::string out = path;
  if (!out.empty()) {
    out += '.';
  }
  out += key;
  return out;
}

std::string indexed(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

bool isLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 bytes. Host names are checked with
// `ignore_case` so "Foo.example.com" is accepted and lower-cased later by translate().
bool isDnsLabel(std::string_view s, bool ignore_case = false) {
  if (s.empty() || s.size() > 63) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (ignore_case && c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    const bool edge = i == 0 || i + 1 == s.size();
    if (!isLowerAlnum(c) && (edge || c != '-')) {
      return false;
    }
  }
  return true;
}

bool isDnsSubdomain(std::string_view s, bool ignore_case = false) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    const std::string_view label =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!isDnsLabel(label, ignore_case)) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

// RFC 1035 label: a DNS label that starts with a letter (Service names).
bool isDns1035Label(std::string_view s) {
  return isDnsLabel(s) && s.front() >= 'a' && s.front() <= 'z';
}

// IANA_SVC_NAME (RFC 6335): 1-15 of [a-z0-9-], at least one letter, no '-' at either end and no
// "--". This is what the API server requires of a backend's port.name.
bool isPortName(std::string_view s) {
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-' ||
      s.find("--") != std::string_view::npos) {
    return false;
  }
  bool letter = false;
  for (char c : s) {
    if (c >= 'a' && c <= 'z') {
      letter = true;
    } else if (!(c >= '0' && c <= '9') && c != '-') {
      return false;
    }
  }
  return letter;
}

bool isIpv4(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1;
}

bool isIpv6(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool isDigits(std::string_view s) {
  if (s.empty() || s.size() > 9) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

// Collects every validation error (up to kMaxErrors) so a manifest author sees them all at once.
class Decoder {
public:
  void fail(const std::string& path, std::string_view message) {
    if (errors_.size() < kMaxErrors) {
      errors_.push_back(path.empty() ? std::string(message) : path + ": " + std::string(message));
    } else {
      truncated_ = true;
    }
  }
  bool ok() const { return errors_.empty(); }
  std::string joined() const {
    std::string out;
    for (const auto& e : errors_) {
      if (!out.empty()) {
        out += "; ";
      }
      out += e;
    }
    if (truncated_) {
      out += "; ...";
    }
    return out;
  }

  // Field readers. An absent or null field reads as "not set", as in Go's JSON decoding; a field
  // of the wrong type is an error and also reads as "not set".
  static const json::value* field(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }

  const json::object* object(const json::object& o, std::string_view key, const std::string& path) {
    const json::value* v = field(o, key);
    if (v == nullptr) {
      return nullptr;
    }
    if (const json::object* out = v->if_object()) {
      return out;
    }
    fail(child(path, key), "must be an object");
    return nullptr;
  }

  const json::array* array(const json::object& o, std::string_view key, const std::string& path) {
    const json::value* v = field(o, key);
    if (v == nullptr) {
      return nullptr;
    }
    if (const json::array* out = v->if_array()) {
      return out;
    }
    fail(child(path, key), "must be a list");
    return nullptr;
  }

  std::optional<std::string> string(const json::object& o, std::string_view key,
                                    const std::string& path) {
    const json::value* v = field(o, key);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (const json::string* s = v->if_string()) {
      return std::string(*s);
    }
    fail(child(path, key), "must be a string");
    return std::nullopt;
  }

  std::optional<std::int64_t> integer(const json::value& v, const std::string& path) {
    if (const std::int64_t* i = v.if_int64()) {
      return *i;
    }
    if (const std::uint64_t* u = v.if_uint64()) {
      if (*u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return static_cast<std::int64_t>(*u);
      }
    }
    if (const double* d = v.if_double()) {
      // Some JSON encoders write 80 as 80.0; a fraction is still an error.
      if (std::isfinite(*d) && std::floor(*d) == *d && std::fabs(*d) < 9.0e15) {
        return static_cast<std::int64_t>(*d);
      }
    }
    fail(path, "must be an integer");
    return std::nullopt;
  }

  std::optional<std::int64_t> integer(const json::object& o, std::string_view key,
                                      const std::string& path) {
    const json::value* v = field(o, key);
    if (v == nullptr) {
      return std::nullopt;
    }
    return integer(*v, child(path, key));
  }

  // A port number field: 1..65535.
  std::optional<std::int32_t> port(const json::object& o, std::string_view key,
                                   const std::string& path) {
    std::optional<std::int64_t> i = integer(o, key, path);
    if (!i) {
      return std::nullopt;
    }
    if (*i < 1 || *i > 65535) {
      fail(child(path, key), "must be between 1 and 65535, got " + std::to_string(*i));
      return std::nullopt;
    }
    return static_cast<std::int32_t>(*i);
  }

  std::optional<bool> boolean(const json::object& o, std::string_view key,
                              const std::string& path) {
    const json::value* v = field(o, key);
    if (v == nullptr) {
      return std::nullopt;
    }
    if (const bool* b = v->if_bool()) {
      return *b;
    }
    // A quoted "true" from a hand-written manifest; the API server would refuse it, but the
    // meaning is unambiguous.
    if (const json::string* s = v->if_string()) {
      if (*s == "true" || *s == "True" || *s == "TRUE") {
        return true;
      }
      if (*s == "false" || *s == "False" || *s == "FALSE") {
        return false;
      }
    }
    fail(child(path, key), "must be a boolean");
    return std::nullopt;
  }

  // Labels and annotations are string maps in the API. A manifest author who writes
  // `is-default-class: true` means the string "true"; any scalar is accepted and rendered back as
  // text (the YAML reader keeps non-canonical scalars as strings, so the text round-trips).
  std::map<std::string, std::string> stringMap(const json::object& o, std::string_view key,
                                               const std::string& path) {
    std::map<std::string, std::string> out;
    const json::object* m = object(o, key, path);
    if (m == nullptr) {
      return out;
    }
    for (const auto& kv : *m) {
      const std::string k(kv.key());
      const json::value& v = kv.value();
      if (const json::string* s = v.if_string()) {
        out[k] = std::string(*s);
      } else if (const bool* b = v.if_bool()) {
        out[k] = *b ? "true" : "false";
      } else if (const std::int64_t* i = v.if_int64()) {
        out[k] = std::to_string(*i);
      } else if (const std::uint64_t* u = v.if_uint64()) {
        out[k] = std::to_string(*u);
      } else if (v.is_double()) {
        out[k] = json::serialize(v);
      } else if (v.is_null()) {
        out[k] = "";
      } else {
        fail(child(path, key) + "." + k, "must be a string");
      }
    }
    return out;
  }

  std::vector<std::string> stringList(const json::object& o, std::string_view key,
                                      const std::string& path) {
    std::vector<std::string> out;
    const json::array* a = array(o, key, path);
    if (a == nullptr) {
      return out;
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (const json::string* s = (*a)[i].if_string()) {
        out.emplace_back(*s);
      } else {
        fail(indexed(child(path, key), i), "must be a string");
      }
    }
    return out;
  }

  std::optional<IntOrString> intOrString(const json::object& o, std::string_view key,
                                         const std::string& path) {
    const json::value* v = field(o, key);
    if (v == nullptr) {
      return std::nullopt;
    }
    const std::string p = child(path, key);
    IntOrString out;
    if (const json::string* s = v->if_string()) {
      if (isDigits(*s)) {
        out.number = std::stoi(std::string(*s));
      } else if (!s->empty()) {
        out.name = std::string(*s);
        return out;
      } else {
        fail(p, "must be a port number or name");
        return std::nullopt;
      }
    } else if (std::optional<std::int64_t> i = integer(*v, p)) {
      if (*i < 0 || *i > 65535) {
        fail(p, "must be between 1 and 65535, got " + std::to_string(*i));
        return std::nullopt;
      }
      out.number = static_cast<std::int32_t>(*i);
    } else {
      return std::nullopt;
    }
    if (out.number < 1 || out.number > 65535) {
      fail(p, "must be between 1 and 65535, got " + std::to_string(out.number));
      return std::nullopt;
    }
    return out;
  }

private:
  std::vector<std::string> errors_;
  bool truncated_ = false;
};

// Fields every kind shares. `namespaced` kinds default to namespace "default" like kubectl.
ObjectMeta decodeMeta(Decoder& dec, const json::object& o, bool namespaced) {
  ObjectMeta meta;
  const json::object* m = dec.object(o, "metadata", "");
  if (m == nullptr) {
    dec.fail("metadata.name", "required");
    return meta;
  }
  const std::string path = "metadata";
  if (std::optional<std::string> name = dec.string(*m, "name", path)) {
    meta.name = *name;
  }
  if (meta.name.empty()) {
    dec.fail("metadata.name", "required");
  } else if (!isDnsSubdomain(meta.name)) {
    // Also keeps '/' and ':' out of the cluster names built from it.
    dec.fail("metadata.name",
             quoted(meta.name) + " must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')");
  }
  if (namespaced) {
    meta.ns = dec.string(*m, "namespace", path).value_or("");
    if (meta.ns.empty()) {
      meta.ns = "default";
    } else if (!isDnsLabel(meta.ns)) {
      dec.fail("metadata.namespace",
               quoted(meta.ns) + " must be a lowercase RFC 1123 label (a-z, 0-9, '-')");
    }
  }
  meta.uid = dec.string(*m, "uid", path).value_or("");
  meta.resource_version = dec.string(*m, "resourceVersion", path).value_or("");
  meta.creation_timestamp = dec.string(*m, "creationTimestamp", path).value_or("");
  if (!meta.creation_timestamp.empty()) {
    if (std::optional<std::int64_t> t = parseRfc3339(meta.creation_timestamp)) {
      meta.creation_seconds = *t;
    } else {
      dec.fail("metadata.creationTimestamp",
               quoted(meta.creation_timestamp) + " must be an RFC 3339 time");
    }
  }
  meta.labels = dec.stringMap(*m, "labels", path);
  meta.annotations = dec.stringMap(*m, "annotations", path);
  return meta;
}

// Rule and TLS hosts, as the API server checks them. Upper case is tolerated (see isDnsLabel).
void validateHost(Decoder& dec, const std::string& host, const std::string& path) {
  if (host.find(':') != std::string::npos) {
    dec.fail(path, quoted(host) + " must not contain ':' (no port and no IPv6 address)");
    return;
  }
  if (host == "*") {
    dec.fail(path, "a bare \"*\" is not allowed; use a host-less rule to match every host");
    return;
  }
  std::string_view name = host;
  if (name.starts_with("*.")) {
    name.remove_prefix(2);
  }
  if (name.find('*') != std::string_view::npos) {
    dec.fail(path, quoted(host) + ": '*' is only allowed as the whole first label (*.example.com)");
    return;
  }
  if (isIpv4(host)) {
    dec.fail(path, quoted(host) + " must be a DNS name, not an IP address");
    return;
  }
  if (!isDnsSubdomain(name, true)) {
    dec.fail(path, quoted(host) + " must be a valid DNS name (labels of a-z, 0-9 and '-')");
  }
}

std::optional<IngressBackend> decodeBackend(Decoder& dec, const json::object& b,
                                            const std::string& path) {
  const json::object* svc = dec.object(b, "service", path);
  const json::object* res = dec.object(b, "resource", path);
  if (svc == nullptr && res == nullptr) {
    if (b.contains("serviceName") || b.contains("servicePort")) {
      dec.fail(path,
               "serviceName/servicePort are networking.k8s.io/v1beta1 fields; "
               "networking.k8s.io/v1 uses service.name and service.port");
    } else {
      dec.fail(path, "must specify exactly one of service or resource");
    }
    return std::nullopt;
  }
  if (svc != nullptr && res != nullptr) {
    dec.fail(path, "must specify exactly one of service or resource, not both");
    return std::nullopt;
  }
  IngressBackend out;
  if (svc != nullptr) {
    const std::string sp = child(path, "service");
    IngressServiceBackend s;
    s.name = dec.string(*svc, "name", sp).value_or("");
    if (s.name.empty()) {
      dec.fail(child(sp, "name"), "required");
    } else if (!isDns1035Label(s.name)) {
      dec.fail(child(sp, "name"),
               quoted(s.name) + " must be a lowercase RFC 1035 label (a-z, 0-9, '-')");
    }
    const std::string pp = child(sp, "port");
    const json::object* port = dec.object(*svc, "port", sp);
    if (port == nullptr) {
      dec.fail(pp, "required");
    } else {
      // Go reads number 0 as "not set"; mirror that.
      const std::optional<std::int64_t> number = dec.integer(*port, "number", pp);
      s.port.name = dec.string(*port, "name", pp).value_or("");
      const bool has_number = number.has_value() && *number != 0;
      const bool bad_number = !number && Decoder::field(*port, "number") != nullptr;
      if (bad_number) {
        // Already reported as "must be an integer".
      } else if (has_number == !s.port.name.empty()) {
        dec.fail(pp, "must specify exactly one of number or name");
      } else if (has_number) {
        if (*number < 1 || *number > 65535) {
          dec.fail(child(pp, "number"),
                   "must be between 1 and 65535, got " + std::to_string(*number));
        } else {
          s.port.number = static_cast<std::int32_t>(*number);
        }
      } else if (!isPortName(s.port.name)) {
        dec.fail(child(pp, "name"), quoted(s.port.name) +
                                        " must be a port name (1-15 of a-z, 0-9, '-', with a "
                                        "letter)");
      }
    }
    out.service = std::move(s);
  } else {
    const std::string rp = child(path, "resource");
    TypedLocalObjectReference r;
    r.api_group = dec.string(*res, "apiGroup", rp).value_or("");
    r.kind = dec.string(*res, "kind", rp).value_or("");
    r.name = dec.string(*res, "name", rp).value_or("");
    if (r.kind.empty()) {
      dec.fail(child(rp, "kind"), "required");
    }
    if (r.name.empty()) {
      dec.fail(child(rp, "name"), "required");
    }
    out.resource = std::move(r);
  }
  return out;
}

std::optional<PathType> parsePathType(std::string_view s) {
  if (s == "Exact") {
    return PathType::kExact;
  }
  if (s == "Prefix") {
    return PathType::kPrefix;
  }
  if (s == "ImplementationSpecific") {
    return PathType::kImplementationSpecific;
  }
  return std::nullopt;
}

void validatePath(Decoder& dec, const HttpIngressPath& p, const std::string& path) {
  if (p.path_type == PathType::kImplementationSpecific) {
    if (!p.path.empty() && p.path.front() != '/') {
      dec.fail(path, quoted(p.path) + " must be an absolute path (start with '/')");
    }
    return;
  }
  if (p.path.empty() || p.path.front() != '/') {
    dec.fail(path, quoted(p.path) + " must be an absolute path (start with '/')");
    return;
  }
  // The API server's list: such paths could never equal a normalized request path.
  for (std::string_view bad : {"//", "/./", "/../", "%2f", "%2F"}) {
    if (p.path.find(bad) != std::string::npos) {
      dec.fail(path, quoted(p.path) + " must not contain '" + std::string(bad) + "'");
      return;
    }
  }
  for (std::string_view bad : {"/..", "/."}) {
    if (std::string_view(p.path).ends_with(bad)) {
      dec.fail(path, quoted(p.path) + " must not end with '" + std::string(bad) + "'");
      return;
    }
  }
}

std::vector<LoadBalancerIngress> decodeLoadBalancerStatus(const json::object& o) {
  std::vector<LoadBalancerIngress> out;
  const json::value* st = Decoder::field(o, "status");
  const json::object* status = st != nullptr ? st->if_object() : nullptr;
  const json::value* lb = status != nullptr ? Decoder::field(*status, "loadBalancer") : nullptr;
  const json::value* list =
      lb != nullptr && lb->is_object() ? Decoder::field(lb->get_object(), "ingress") : nullptr;
  if (list == nullptr || !list->is_array()) {
    return out;
  }
  for (const json::value& v : list->get_array()) {
    const json::object* e = v.if_object();
    if (e == nullptr) {
      continue;
    }
    LoadBalancerIngress entry;
    if (const json::value* ip = Decoder::field(*e, "ip"); ip && ip->is_string()) {
      entry.ip = ip->get_string();
    }
    if (const json::value* host = Decoder::field(*e, "hostname"); host && host->is_string()) {
      entry.hostname = host->get_string();
    }
    out.push_back(std::move(entry));
  }
  return out;
}

Ingress decodeIngress(Decoder& dec, const json::object& o) {
  Ingress ing;
  ing.metadata = decodeMeta(dec, o, true);
  const json::object* spec = dec.object(o, "spec", "");
  if (spec == nullptr) {
    dec.fail("spec", "must specify rules or defaultBackend");
    return ing;
  }
  const std::string sp = "spec";
  if (std::optional<std::string> cls = dec.string(*spec, "ingressClassName", sp)) {
    if (!cls->empty()) {
      ing.ingress_class_name = *cls;
    }
  }
  if (const json::object* b = dec.object(*spec, "defaultBackend", sp)) {
    ing.default_backend = decodeBackend(dec, *b, "spec.defaultBackend");
  } else if (Decoder::field(*spec, "backend") != nullptr) {
    dec.fail("spec.backend", "is a networking.k8s.io/v1beta1 field; use spec.defaultBackend");
  }
  if (const json::array* rules = dec.array(*spec, "rules", sp)) {
    for (std::size_t i = 0; i < rules->size(); ++i) {
      const std::string rp = indexed("spec.rules", i);
      const json::object* r = (*rules)[i].if_object();
      if (r == nullptr) {
        dec.fail(rp, "must be an object");
        continue;
      }
      IngressRule rule;
      rule.host = dec.string(*r, "host", rp).value_or("");
      if (!rule.host.empty()) {
        validateHost(dec, rule.host, child(rp, "host"));
      }
      if (const json::object* http = dec.object(*r, "http", rp)) {
        rule.has_http = true;
        const std::string hp = child(rp, "http");
        const json::array* paths = dec.array(*http, "paths", hp);
        if (paths == nullptr || paths->empty()) {
          dec.fail(child(hp, "paths"), "required");
        } else {
          for (std::size_t j = 0; j < paths->size(); ++j) {
            const std::string pp = indexed(child(hp, "paths"), j);
            const json::object* p = (*paths)[j].if_object();
            if (p == nullptr) {
              dec.fail(pp, "must be an object");
              continue;
            }
            HttpIngressPath hip;
            hip.path = dec.string(*p, "path", pp).value_or("");
            const std::optional<std::string> type = dec.string(*p, "pathType", pp);
            bool valid = true;
            if (!type) {
              dec.fail(child(pp, "pathType"), "required (Exact, Prefix or ImplementationSpecific)");
              valid = false;
            } else if (std::optional<PathType> t = parsePathType(*type)) {
              hip.path_type = *t;
            } else {
              dec.fail(child(pp, "pathType"), "must be Exact, Prefix or ImplementationSpecific");
              valid = false;
            }
            if (valid) {
              validatePath(dec, hip, child(pp, "path"));
            }
            if (const json::object* b = dec.object(*p, "backend", pp)) {
              if (std::optional<IngressBackend> be = decodeBackend(dec, *b, child(pp, "backend"))) {
                hip.backend = std::move(*be);
              }
            } else {
              dec.fail(child(pp, "backend"), "required");
            }
            rule.paths.push_back(std::move(hip));
          }
        }
      }
      ing.rules.push_back(std::move(rule));
    }
  }
  if (const json::array* tls = dec.array(*spec, "tls", sp)) {
    for (std::size_t i = 0; i < tls->size(); ++i) {
      const std::string tp = indexed("spec.tls", i);
      const json::object* t = (*tls)[i].if_object();
      if (t == nullptr) {
        dec.fail(tp, "must be an object");
        continue;
      }
      IngressTls entry;
      entry.hosts = dec.stringList(*t, "hosts", tp);
      for (std::size_t j = 0; j < entry.hosts.size(); ++j) {
        validateHost(dec, entry.hosts[j], indexed(child(tp, "hosts"), j));
      }
      entry.secret_name = dec.string(*t, "secretName", tp).value_or("");
      ing.tls.push_back(std::move(entry));
    }
  }
  if (ing.rules.empty() && !ing.default_backend && dec.ok()) {
    dec.fail("spec", "must specify rules or defaultBackend");
  }
  ing.status_load_balancer = decodeLoadBalancerStatus(o);
  return ing;
}

IngressClass decodeIngressClass(Decoder& dec, const json::object& o) {
  IngressClass cls;
  cls.metadata = decodeMeta(dec, o, false);
  const json::object* spec = dec.object(o, "spec", "");
  if (spec != nullptr) {
    cls.controller = dec.string(*spec, "controller", "spec").value_or("");
  }
  if (cls.controller.empty()) {
    dec.fail("spec.controller", "required");
  }
  return cls;
}

Service decodeService(Decoder& dec, const json::object& o) {
  Service svc;
  svc.metadata = decodeMeta(dec, o, true);
  const json::object* spec = dec.object(o, "spec", "");
  if (spec == nullptr) {
    dec.fail("spec", "required");
    return svc;
  }
  const std::string sp = "spec";
  svc.type = dec.string(*spec, "type", sp).value_or("ClusterIP");
  if (svc.type != "ClusterIP" && svc.type != "NodePort" && svc.type != "LoadBalancer" &&
      svc.type != "ExternalName") {
    dec.fail("spec.type", "must be ClusterIP, NodePort, LoadBalancer or ExternalName");
  }
  svc.cluster_ip = dec.string(*spec, "clusterIP", sp).value_or("");
  svc.external_name = dec.string(*spec, "externalName", sp).value_or("");
  if (const json::array* ports = dec.array(*spec, "ports", sp)) {
    std::set<std::string> names;
    for (std::size_t i = 0; i < ports->size(); ++i) {
      const std::string pp = indexed("spec.ports", i);
      const json::object* p = (*ports)[i].if_object();
      if (p == nullptr) {
        dec.fail(pp, "must be an object");
        continue;
      }
      ServicePort port;
      port.name = dec.string(*p, "name", pp).value_or("");
      port.protocol = dec.string(*p, "protocol", pp).value_or("TCP");
      if (port.protocol != "TCP" && port.protocol != "UDP" && port.protocol != "SCTP") {
        dec.fail(child(pp, "protocol"), "must be TCP, UDP or SCTP");
      }
      if (std::optional<std::int32_t> n = dec.port(*p, "port", pp)) {
        port.port = *n;
      } else if (Decoder::field(*p, "port") == nullptr) {
        dec.fail(child(pp, "port"), "required");
      }
      port.target_port = dec.intOrString(*p, "targetPort", pp);
      if (ports->size() > 1 && port.name.empty()) {
        dec.fail(child(pp, "name"), "required when the Service has more than one port");
      } else if (!port.name.empty() && !names.insert(port.name).second) {
        dec.fail(child(pp, "name"), "duplicate port name " + quoted(port.name));
      }
      svc.ports.push_back(std::move(port));
    }
  }
  return svc;
}

EndpointSlice decodeEndpointSlice(Decoder& dec, const json::object& o, std::string api_version) {
  EndpointSlice slice;
  slice.api_version = std::move(api_version);
  slice.metadata = decodeMeta(dec, o, true);
  slice.address_type = dec.string(o, "addressType", "").value_or("");
  const bool v4 = slice.address_type == "IPv4";
  const bool v6 = slice.address_type == "IPv6";
  if (slice.address_type.empty()) {
    dec.fail("addressType", "required");
  } else if (!v4 && !v6 && slice.address_type != "FQDN") {
    dec.fail("addressType", "must be IPv4, IPv6 or FQDN");
  }
  if (const json::array* eps = dec.array(o, "endpoints", "")) {
    for (std::size_t i = 0; i < eps->size(); ++i) {
      const std::string ep = indexed("endpoints", i);
      const json::object* e = (*eps)[i].if_object();
      if (e == nullptr) {
        dec.fail(ep, "must be an object");
        continue;
      }
      SliceEndpoint endpoint;
      endpoint.addresses = dec.stringList(*e, "addresses", ep);
      if (endpoint.addresses.empty()) {
        dec.fail(child(ep, "addresses"), "must have at least one address");
      } else if (endpoint.addresses.size() > 100) {
        dec.fail(child(ep, "addresses"), "must have at most 100 addresses");
      }
      for (std::size_t j = 0; j < endpoint.addresses.size(); ++j) {
        const std::string& a = endpoint.addresses[j];
        if ((v4 && !isIpv4(a)) || (v6 && !isIpv6(a))) {
          dec.fail(indexed(child(ep, "addresses"), j),
                   quoted(a) + " must be a valid " + slice.address_type + " address");
        }
      }
      if (const json::object* c = dec.object(*e, "conditions", ep)) {
        const std::string cp = child(ep, "conditions");
        endpoint.conditions.ready = dec.boolean(*c, "ready", cp);
        endpoint.conditions.serving = dec.boolean(*c, "serving", cp);
        endpoint.conditions.terminating = dec.boolean(*c, "terminating", cp);
      }
      endpoint.node_name = dec.string(*e, "nodeName", ep);
      endpoint.zone = dec.string(*e, "zone", ep);
      slice.endpoints.push_back(std::move(endpoint));
    }
  }
  if (const json::array* ports = dec.array(o, "ports", "")) {
    for (std::size_t i = 0; i < ports->size(); ++i) {
      const std::string pp = indexed("ports", i);
      const json::object* p = (*ports)[i].if_object();
      if (p == nullptr) {
        dec.fail(pp, "must be an object");
        continue;
      }
      SlicePort port;
      port.name = dec.string(*p, "name", pp).value_or("");
      port.port = dec.port(*p, "port", pp);
      port.protocol = dec.string(*p, "protocol", pp).value_or("TCP");
      port.app_protocol = dec.string(*p, "appProtocol", pp);
      slice.ports.push_back(std::move(port));
    }
  }
  return slice;
}

// One key of a Secret's data (base64) or stringData (plain text; wins, as the API server merges
// it). Empty when absent.
Result<std::string> secretValue(Decoder& dec, const json::object& o, std::string_view key) {
  if (const json::object* plain = dec.object(o, "stringData", "")) {
    if (const json::value* v = plain->if_contains(key); v != nullptr && v->is_string()) {
      return std::string(v->get_string());
    }
  }
  if (const json::object* data = dec.object(o, "data", "")) {
    if (const json::value* v = data->if_contains(key); v != nullptr && v->is_string()) {
      Result<std::string> decoded = tls::decodeBase64(v->get_string());
      if (!decoded) {
        return decoded.error().wrap("data." + std::string(key));
      }
      return decoded;
    }
  }
  return std::string();
}

// kubernetes.io/tls: tls.crt + tls.key become a tls::Certificate now; the text is wiped.
void decodeTlsSecret(Decoder& dec, const json::object& o, Secret& secret) {
  Result<std::string> crt = secretValue(dec, o, "tls.crt");
  Result<std::string> key = secretValue(dec, o, "tls.key");
  if (!crt || !key) {
    secret.certificate_error = (!crt ? crt.error() : key.error()).message();
  } else if (crt->empty() || key->empty()) {
    secret.certificate_error = crt->empty() ? "tls.crt is missing" : "tls.key is missing";
  } else {
    auto cert = tls::Certificate::fromPem(*crt, *key, std::time(nullptr));
    if (cert) {
      secret.certificate = *cert;
    } else {
      secret.certificate_error = cert.error().message();
    }
  }
  if (key) {
    tls::wipe(*key);
  }
}

Secret decodeSecret(Decoder& dec, const json::object& o) {
  Secret secret;
  secret.metadata = decodeMeta(dec, o, true);
  secret.type = dec.string(o, "type", "").value_or("Opaque");
  if (const json::object* data = dec.object(o, "data", "")) {
    for (const auto& kv : *data) {
      if (!kv.value().is_string() && !kv.value().is_null()) {
        dec.fail("data." + std::string(kv.key()), "must be a base64 string");
      }
    }
  }
  dec.stringMap(o, "stringData", "");  // checked for shape; only TLS Secrets are read
  if (secret.type == "kubernetes.io/tls") {
    decodeTlsSecret(dec, o, secret);
  }
  return secret;
}

ConfigMap decodeConfigMap(Decoder& dec, const json::object& o) {
  ConfigMap cm;
  cm.metadata = decodeMeta(dec, o, true);
  cm.data = dec.stringMap(o, "data", "");
  return cm;
}

// "ns/name" for error messages, read leniently so a broken object can still be named.
std::string label(const json::object& o, std::string_view kind) {
  std::string name, ns;
  if (const json::value* m = Decoder::field(o, "metadata")) {
    if (const json::object* mo = m->if_object()) {
      if (const json::value* n = Decoder::field(*mo, "name"); n && n->is_string()) {
        name = std::string(n->get_string());
      }
      if (const json::value* n = Decoder::field(*mo, "namespace"); n && n->is_string()) {
        ns = std::string(n->get_string());
      }
    }
  }
  if (name.empty()) {
    name = "(unnamed)";
  }
  if (isClusterScoped(kind)) {
    return name;
  }
  return (ns.empty() ? std::string("default") : ns) + "/" + name;
}

struct KindInfo {
  std::string_view kind;
  std::string_view versions[2];
};

constexpr KindInfo kKinds[] = {
    {"Ingress", {"networking.k8s.io/v1", ""}},
    {"IngressClass", {"networking.k8s.io/v1", ""}},
    {"Service", {"v1", ""}},
    {"EndpointSlice", {"discovery.k8s.io/v1", "discovery.k8s.io/v1beta1"}},
    {"Secret", {"v1", ""}},
    {"ConfigMap", {"v1", ""}},
};

Result<Object> decodeChecked(const json::value& value) {
  const json::object* o = value.if_object();
  if (o == nullptr) {
    return Error("not an object");
  }
  const json::value* kind_value = Decoder::field(*o, "kind");
  if (kind_value == nullptr || !kind_value->is_string() || kind_value->get_string().empty()) {
    return Error("kind: required");
  }
  const std::string kind(kind_value->get_string());
  const KindInfo* info = nullptr;
  for (const KindInfo& k : kKinds) {
    if (k.kind == kind) {
      info = &k;
    }
  }
  if (info == nullptr) {
    return Error("unsupported kind " + kind);
  }
  const std::string prefix = kind + " " + label(*o, kind) + ": ";
  std::string api_version;
  if (const json::value* v = Decoder::field(*o, "apiVersion"); v && v->is_string()) {
    api_version = std::string(v->get_string());
  }
  if (api_version.empty()) {
    return Error(prefix + "apiVersion: required");
  }
  if (api_version != info->versions[0] && api_version != info->versions[1]) {
    return Error(prefix + "apiVersion: " + api_version + " is not supported (use " +
                 std::string(info->versions[0]) + ")");
  }

  Decoder dec;
  Object object;
  if (kind == "Ingress") {
    object = decodeIngress(dec, *o);
  } else if (kind == "IngressClass") {
    object = decodeIngressClass(dec, *o);
  } else if (kind == "Service") {
    object = decodeService(dec, *o);
  } else if (kind == "EndpointSlice") {
    object = decodeEndpointSlice(dec, *o, api_version);
  } else if (kind == "Secret") {
    object = decodeSecret(dec, *o);
  } else {
    object = decodeConfigMap(dec, *o);
  }
  if (!dec.ok()) {
    return Error(prefix + dec.joined());
  }
  return object;
}

}  // namespace

Result<Object> decodeObject(const boost::json::value& value) {
  // Bad input never throws (only non-throwing accessors are used); this catches resource
  // exhaustion (bad_alloc) so that no caller has to.
  try {
    return decodeChecked(value);
  } catch (const std::exception& e) {
    return Error(std::string("cannot decode: ") + e.what());
  }
}

std::optional<ObjectRef> peekRef(const boost::json::value& value) {
  const json::object* o = value.if_object();
  if (o == nullptr) {
    return std::nullopt;
  }
  const json::value* kind = Decoder::field(*o, "kind");
  const json::value* meta = Decoder::field(*o, "metadata");
  if (kind == nullptr || !kind->is_string() || meta == nullptr || !meta->is_object()) {
    return std::nullopt;
  }
  const json::value* name = Decoder::field(meta->get_object(), "name");
  if (name == nullptr || !name->is_string() || name->get_string().empty()) {
    return std::nullopt;
  }
  ObjectRef ref;
  ref.kind = std::string(kind->get_string());
  ref.name = std::string(name->get_string());
  if (!isClusterScoped(ref.kind)) {
    const json::value* ns = Decoder::field(meta->get_object(), "namespace");
    if (ns != nullptr && ns->is_string() && !ns->get_string().empty()) {
      ref.ns = std::string(ns->get_string());
    } else {
      ref.ns = "default";
    }
  }
  return ref;
}

}  // namespace sluice::k8s
