#include "http/rewrite.hpp"

#include <charconv>

#include "http/syntax.hpp"

namespace sluice::http {

namespace {

void appendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// What becomes of a client field in the upstream head (Host is handled on its own).
enum class FieldRule : std::uint8_t {
  kCopy,
  kDrop,
  kForwardedFor,    // X-Forwarded-For: joined and extended for a trusted peer
  kForwardedProto,  // the trusted peer's value wins over the agent's
  kForwardedHost,
  kForwardedPort,
  kTrustedOnly,  // X-Forwarded-Prefix, Forwarded: passed unchanged from a trusted peer only
};

bool startsWithI(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// The X-* names this file decides on, after "x-".
FieldRule classifyX(std::string_view rest) {
  if (startsWithI(rest, "forwarded-")) {
    const std::string_view which = rest.substr(10);
    if (iequals(which, "for")) {
      return FieldRule::kForwardedFor;
    }
    if (iequals(which, "proto")) {
      return FieldRule::kForwardedProto;
    }
    if (iequals(which, "host")) {
      return FieldRule::kForwardedHost;
    }
    if (iequals(which, "port")) {
      return FieldRule::kForwardedPort;
    }
    if (iequals(which, "prefix")) {
      return FieldRule::kTrustedOnly;
    }
    return FieldRule::kCopy;
  }
  // The agent sets X-Real-IP itself; the URL overrides would let a backend serve another path
  // than the one routed on.
  if (iequals(rest, "real-ip") || iequals(rest, "original-url") || iequals(rest, "rewrite-url")) {
    return FieldRule::kDrop;
  }
  return FieldRule::kCopy;
}

FieldRule classify(std::string_view name, std::string_view connection) {
  // A CGI backend maps '-' and '_' both onto '_': "X_Forwarded_For" would arrive as the
  // X-Forwarded-For we control.
  if (name.find('_') != std::string_view::npos) {
    return FieldRule::kDrop;
  }
  // Framing and Expect are written from the parse (or answered by the agent).
  if (iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
      iequals(name, "expect") || isHopByHop(name, connection)) {
    return FieldRule::kDrop;
  }
  if (name.size() > 2 && (name[0] == 'x' || name[0] == 'X') && name[1] == '-') {
    return classifyX(name.substr(2));
  }
  if (iequals(name, "forwarded")) {
    return FieldRule::kTrustedOnly;
  }
  return FieldRule::kCopy;
}

// The address of one X-Forwarded-For element: "192.0.2.1", "192.0.2.1:80", "2001:db8::1" or
// "[2001:db8::1]:80" give the bare literal; anything else (obfuscated names, "unknown") "".
std::string_view elementAddress(std::string_view e) {
  if (!e.empty() && e.front() == '[') {
    const std::size_t close = e.find(']');
    if (close == std::string_view::npos) {
      return {};
    }
    const std::string_view port = e.substr(close + 1);
    const bool port_ok =
        port.empty() || (port.size() > 1 && port.size() <= 6 && port[0] == ':' &&
                         port.substr(1).find_first_not_of("0123456789") == std::string_view::npos);
    const std::string_view inner = e.substr(1, close - 1);
    return port_ok && detail::validIpv6(inner) ? inner : std::string_view{};
  }
  if (detail::validIpv4(e) || detail::validIpv6(e)) {
    return e;
  }
  const std::size_t colon = e.find(':');
  if (colon != std::string_view::npos && e.find(':', colon + 1) == std::string_view::npos) {
    const std::string_view port = e.substr(colon + 1);
    if (!port.empty() && port.size() <= 5 &&
        port.find_first_not_of("0123456789") == std::string_view::npos &&
        detail::validIpv4(e.substr(0, colon))) {
      return e.substr(0, colon);
    }
  }
  return {};
}

// The protocol-name of an Upgrade element ("websocket", "HTTP/2.0" -> "HTTP") and its version.
void splitProtocol(std::string_view element, std::string_view& name, std::string_view& version) {
  const std::size_t slash = element.find('/');
  name = element.substr(0, slash);
  version = slash == std::string_view::npos ? std::string_view{} : element.substr(slash + 1);
}

bool protocolAllowed(std::string_view element, std::string_view allowed) {
  std::string_view name;
  std::string_view version;
  splitProtocol(element, name, version);
  bool found = false;
  if (!name.empty()) {
    detail::forEachListElement(
        allowed, [&](std::string_view a) { found = found || (!a.empty() && iequals(a, name)); });
  }
  return found;
}

// The allowed protocols of every Upgrade field of `req`, joined with ", ", appended to `out`.
void appendAllowedUpgrade(const RequestHead& req, std::string_view allowed, std::string& out) {
  bool first = true;
  for (std::size_t i = 0; i < req.header_count; ++i) {
    if (!iequals(req.headers[i].name, "upgrade")) {
      continue;
    }
    detail::forEachListElement(req.headers[i].value, [&](std::string_view e) {
      if (!e.empty() && protocolAllowed(e, allowed)) {
        out.append(first ? "" : ", ").append(e);
        first = false;
      }
    });
  }
}

// The forwarding fields a trusted peer sent, gathered while its head is copied.
struct TrustedFields {
  std::string_view xff;
  std::string_view proto;
  std::string_view host;
  std::string_view port;
};

// Copies the client's fields (all but Host and framing) to `out`, keeping what a trusted peer's
// forwarding fields say in `kept`.
void copyFields(const RequestHead& req, const Forwarding& fwd, std::string& out,
                std::string& scratch, TrustedFields& kept) {
  const std::string_view connection = findHeader(req.headers, req.header_count, "connection");
  for (std::size_t i = 0; i < req.header_count; ++i) {
    const Header& h = req.headers[i];
    if (iequals(h.name, "host")) {
      if (req.authority.empty()) {
        appendField(out, h.name, h.value);
      }
      continue;
    }
    const FieldRule rule = classify(h.name, connection);
    if (rule == FieldRule::kCopy || (rule == FieldRule::kTrustedOnly && fwd.trusted_peer)) {
      appendField(out, h.name, h.value);
    }
    if (!fwd.trusted_peer) {
      continue;
    }
    if (rule == FieldRule::kForwardedFor) {
      // Several X-Forwarded-For fields form one list (RFC 9110 §5.3).
      if (!kept.xff.empty()) {
        if (kept.xff.data() != scratch.data()) {
          scratch.assign(kept.xff);
        }
        scratch.append(", ").append(h.value);
        kept.xff = scratch;
      } else {
        kept.xff = h.value;
      }
    } else if (rule == FieldRule::kForwardedProto && kept.proto.empty()) {
      kept.proto = h.value;
    } else if (rule == FieldRule::kForwardedHost && kept.host.empty()) {
      kept.host = h.value;
    } else if (rule == FieldRule::kForwardedPort && kept.port.empty()) {
      kept.port = h.value;
    }
  }
}

void appendForwarding(const RequestHead& req, const Forwarding& fwd, const TrustedFields& kept,
                      std::string& out) {
  out.append("X-Forwarded-For: ");
  if (!kept.xff.empty()) {
    out.append(kept.xff).append(", ");
  }
  out.append(fwd.client_ip).append("\r\n");
  appendField(
      out, "X-Real-IP",
      fwd.trusted_peer ? realClientAddress(kept.xff, fwd.client_ip, fwd.trusted) : fwd.client_ip);
  appendField(out, "X-Forwarded-Proto", kept.proto.empty() ? fwd.proto : kept.proto);
  const std::string_view own_host = req.authority.empty() ? req.host : req.authority;
  const std::string_view host = kept.host.empty() ? own_host : kept.host;
  if (!host.empty()) {
    appendField(out, "X-Forwarded-Host", host);
  }
  const std::string_view port = kept.port.empty() ? fwd.port : kept.port;
  if (!port.empty()) {
    appendField(out, "X-Forwarded-Port", port);
  }
}

}  // namespace

void buildUpstreamHead(const RequestHead& req, std::string_view path, const Forwarding& fwd,
                       std::string& out, std::string& scratch) {
  out.clear();
  out.append(req.method).append(" ").append(path);
  if (!req.query.empty()) {
    out.append("?").append(req.query);
  }
  out.append(" HTTP/1.1\r\n");
  if (!req.authority.empty()) {
    appendField(out, "Host", req.authority);
  }
  TrustedFields kept;
  copyFields(req, fwd, out, scratch, kept);
  if (req.host.empty() && req.authority.empty()) {
    out.append("Host: \r\n");  // HTTP/1.0 without Host: HTTP/1.1 upstreams require the field
  }
  if (req.body == BodyKind::kChunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  } else if (req.body == BodyKind::kContentLength) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, req.content_length);
    appendField(out, "Content-Length",
                std::string_view(digits, static_cast<std::size_t>(end - digits)));
  }
  if (upgradeAllowed(req, fwd.upgrade_protocols)) {
    out.append("Connection: upgrade\r\nUpgrade: ");
    appendAllowedUpgrade(req, fwd.upgrade_protocols, out);
    out.append("\r\n");
  }
  appendForwarding(req, fwd, kept, out);
  out.append("\r\n");
}

std::string_view realClientAddress(std::string_view xff, std::string_view peer,
                                   const AddressPredicate& trusted) {
  std::string_view candidate = peer;
  while (!xff.empty()) {
    const std::size_t comma = xff.rfind(',');
    const std::string_view element =
        detail::trimOws(comma == std::string_view::npos ? xff : xff.substr(comma + 1));
    xff = comma == std::string_view::npos ? std::string_view{} : xff.substr(0, comma);
    if (element.empty()) {
      continue;  // "a, , b": an empty element names no hop
    }
    const std::string_view address = elementAddress(element);
    if (address.empty()) {
      break;
    }
    candidate = address;
    if (!trusted(address)) {
      break;
    }
  }
  return candidate;
}

bool upgradeListAllowed(std::string_view request_upgrade, std::string_view allowed) {
  bool any = false;
  detail::forEachListElement(request_upgrade, [&](std::string_view e) {
    any = any || (!e.empty() && protocolAllowed(e, allowed));
  });
  return any;
}

bool upgradeListAccepted(std::string_view request_upgrade, std::string_view allowed,
                         std::string_view response_upgrade) {
  bool all = true;
  bool any = false;
  detail::forEachListElement(response_upgrade, [&](std::string_view answered) {
    if (answered.empty()) {
      return;
    }
    any = true;
    std::string_view name;
    std::string_view version;
    splitProtocol(answered, name, version);
    bool asked = false;
    detail::forEachListElement(request_upgrade, [&](std::string_view e) {
      std::string_view asked_name;
      std::string_view asked_version;
      splitProtocol(e, asked_name, asked_version);
      asked =
          asked || (!e.empty() && iequals(name, asked_name) &&
                    (version.empty() || asked_version.empty() || iequals(version, asked_version)));
    });
    all = all && asked && protocolAllowed(answered, allowed);
  });
  return any && all;
}

bool upgradeAllowed(const RequestHead& req, std::string_view allowed) {
  if (!req.upgrade) {
    return false;
  }
  for (std::size_t i = 0; i < req.header_count; ++i) {
    if (iequals(req.headers[i].name, "upgrade") &&
        upgradeListAllowed(req.headers[i].value, allowed)) {
      return true;
    }
  }
  return false;
}

bool upgradeAccepted(const RequestHead& req, std::string_view allowed, const ResponseHead& resp) {
  if (resp.status != 101 || !upgradeAllowed(req, allowed)) {
    return false;
  }
  bool any = false;
  for (std::size_t r = 0; r < resp.header_count; ++r) {
    if (!iequals(resp.headers[r].name, "upgrade")) {
      continue;
    }
    // Each protocol of the answer must be in one of the request's Upgrade fields.
    bool answered_all = true;
    detail::forEachListElement(resp.headers[r].value, [&](std::string_view answered) {
      if (answered.empty()) {
        return;
      }
      any = true;
      bool asked = false;
      for (std::size_t q = 0; q < req.header_count && !asked; ++q) {
        asked = iequals(req.headers[q].name, "upgrade") &&
                upgradeListAccepted(req.headers[q].value, allowed, answered);
      }
      answered_all = answered_all && asked;
    });
    if (!answered_all) {
      return false;
    }
  }
  return any;
}

bool validUpgradeProtocols(std::string_view list) {
  bool ok = true;
  detail::forEachListElement(list, [&](std::string_view e) {
    ok =
        ok && !e.empty() && detail::scanToken(e.data(), e.data() + e.size()) == e.data() + e.size();
  });
  return ok;
}

namespace {

// All Transfer-Encoding values of `resp`, as one field.
void appendTransferEncoding(const ResponseHead& resp, std::string& out) {
  out.append("Transfer-Encoding: ");
  bool first = true;
  for (std::size_t i = 0; i < resp.header_count; ++i) {
    if (iequals(resp.headers[i].name, "transfer-encoding")) {
      out.append(first ? "" : ", ").append(resp.headers[i].value);
      first = false;
    }
  }
  out.append("\r\n");
}

}  // namespace

void buildResponseHead(const ResponseHead& resp, const ClientResponse& client, std::string& out) {
  const std::string_view connection = findHeader(resp.headers, resp.header_count, "connection");
  const bool interim = resp.status < 200;
  const bool bodiless = interim || resp.status == 204 || resp.status == 304;
  out.clear();
  out.append("HTTP/1.1 ");
  char status[4];
  std::to_chars(status, status + 3, resp.status);
  out.append(status, 3).append(" ").append(resp.reason).append("\r\n");
  bool te_written = false;
  for (std::size_t i = 0; i < resp.header_count; ++i) {
    const Header& h = resp.headers[i];
    // Framing fields cannot be removed through Connection: the body we forward is delimited
    // exactly as the upstream announced it. Transfer-Encoding keeps its full coding list.
    if (iequals(h.name, "transfer-encoding")) {
      if (!bodiless && !client.dechunk && !te_written) {
        appendTransferEncoding(resp, out);
        te_written = true;
      }
    } else if (iequals(h.name, "content-length")) {
      // Kept for a delimited body, and for HEAD/304 where it describes the entity; never on a
      // 1xx or 204, which cannot have content.
      if ((resp.body == BodyKind::kContentLength || resp.body == BodyKind::kNone) && !interim &&
          resp.status != 204) {
        appendField(out, h.name, h.value);
      }
    } else if (!client.hsts.empty() && iequals(h.name, "strict-transport-security")) {
      // The route's policy replaces the upstream's (added below).
    } else if (!isHopByHop(h.name, connection)) {
      appendField(out, h.name, h.value);
    }
  }
  if (!interim && !client.hsts.empty()) {
    appendField(out, "Strict-Transport-Security", client.hsts);
  }
  if (interim) {
    // The connection's fate is the final response's to announce.
  } else if (client.close || client.dechunk) {
    out.append("Connection: close\r\n");
  } else if (client.http10) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

void buildResponseHead(const ResponseHead& resp, bool close, bool client_http10, std::string& out) {
  buildResponseHead(resp, ClientResponse{.close = close, .http10 = client_http10}, out);
}

bool dechunkForClient(const ResponseHead& resp, bool client_http10) {
  return client_http10 && resp.body == BodyKind::kChunked;
}

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

bool mustCloseClient(bool client_keep_alive, bool client_http10, const ResponseHead& resp) {
  return !client_keep_alive || resp.body == BodyKind::kUntilClose ||
         dechunkForClient(resp, client_http10);
}

bool upstreamReusable(const ResponseHead& resp) {
  // A 204/304 that announces a body anyway may still send it: never reuse that connection.
  const std::string_view cl = findHeader(resp.headers, resp.header_count, "content-length");
  const bool bodyless_with_length =
      (resp.status == 204 || resp.status == 304) &&
      ((!cl.empty() && cl != "0") ||
       !findHeader(resp.headers, resp.header_count, "transfer-encoding").empty());
  return resp.keep_alive && !bodyless_with_length && resp.body != BodyKind::kUntilClose;
}

}  // namespace sluice::http
