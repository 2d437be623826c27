#include "http/rewrite.hpp"

#include <charconv>

namespace sluice::http {

namespace {

void appendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// Fields the agent writes itself, from the parse, instead of copying them.
bool replacedUpstream(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
         iequals(name, "x-forwarded-proto") || iequals(name, "x-forwarded-host") ||
         iequals(name, "expect");
}

}  // namespace

void buildUpstreamHead(const RequestHead& req, std::string_view path, const Forwarding& fwd,
                       std::string& out, std::string& scratch) {
  const std::string_view connection = findHeader(req.headers, req.header_count, "connection");
  std::string_view xff;
  out.clear();
  out.append(req.method).append(" ").append(path);
  if (!req.query.empty()) {
    out.append("?").append(req.query);
  }
  out.append(" HTTP/1.1\r\n");
  if (!req.authority.empty()) {
    appendField(out, "Host", req.authority);
  }
  for (std::size_t i = 0; i < req.header_count; ++i) {
    const Header& h = req.headers[i];
    if (iequals(h.name, "host")) {
      if (req.authority.empty()) {
        appendField(out, h.name, h.value);
      }
    } else if (replacedUpstream(h.name) || isHopByHop(h.name, connection)) {
      continue;
    } else if (iequals(h.name, "x-forwarded-for")) {
      // Several X-Forwarded-For fields form one list (RFC 9110 §5.3).
      if (!xff.empty()) {
        scratch.assign(xff).append(", ").append(h.value);
        xff = scratch;
      } else {
        xff = h.value;
      }
    } else {
      appendField(out, h.name, h.value);
    }
  }
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
  if (req.upgrade) {
    out.append("Connection: upgrade\r\n");
    appendField(out, "Upgrade", findHeader(req.headers, req.header_count, "upgrade"));
  }
  out.append("X-Forwarded-For: ");
  if (!xff.empty()) {
    out.append(xff).append(", ");
  }
  out.append(fwd.client_ip).append("\r\n");
  appendField(out, "X-Forwarded-Proto", fwd.proto);
  const std::string_view fwd_host = req.authority.empty() ? req.host : req.authority;
  if (!fwd_host.empty()) {
    appendField(out, "X-Forwarded-Host", fwd_host);
  }
  out.append("\r\n");
}

void buildResponseHead(const ResponseHead& resp, bool close, bool client_http10, std::string& out) {
  const std::string_view connection = findHeader(resp.headers, resp.header_count, "connection");
  out.clear();
  out.append("HTTP/1.1 ");
  char status[4];
  std::to_chars(status, status + 3, resp.status);
  out.append(status, 3).append(" ").append(resp.reason).append("\r\n");
  for (std::size_t i = 0; i < resp.header_count; ++i) {
    const Header& h = resp.headers[i];
    // Framing fields cannot be removed through Connection: the body we forward is delimited
    // exactly as the upstream announced it. Transfer-Encoding keeps its full coding list.
    if (iequals(h.name, "transfer-encoding")) {
      appendField(out, h.name, h.value);
    } else if (iequals(h.name, "content-length")) {
      // Kept for a delimited body, and for HEAD/304 where it describes the entity.
      if (resp.body == BodyKind::kContentLength || resp.body == BodyKind::kNone) {
        appendField(out, h.name, h.value);
      }
    } else if (!isHopByHop(h.name, connection)) {
      appendField(out, h.name, h.value);
    }
  }
  if (close) {
    out.append("Connection: close\r\n");
  } else if (client_http10) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

bool mustCloseClient(bool client_keep_alive, bool client_http10, const ResponseHead& resp) {
  return !client_keep_alive || resp.body == BodyKind::kUntilClose ||
         (client_http10 && resp.body == BodyKind::kChunked);
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
