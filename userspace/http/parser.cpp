// Request and response head parsing. One pass over the buffer with no allocation; every byte is
// checked the first time it is looked at, so an invalid head fails as soon as the offending byte
// arrives rather than when the blank line does.
#include "http/parser.hpp"

#include <algorithm>

#include "http/syntax.hpp"

namespace sluice::http {
namespace {

using detail::CharClass;
using detail::is;

// RFC 9112 §2.2 asks servers to skip "at least one" empty line before a request line; a few are
// tolerated for clients that add CRLF after a body, more is noise or an attack.
constexpr std::size_t kMaxLeadingEmptyLines = 4;
// Content of a path when the target has none (absolute-form "http://h" or "http://h?q").
constexpr std::string_view kRootPath = "/";

ParseResult fail(ParseError e) {
  return {ParseStatus::kError, e, 0};
}

// The head view is the buffer cut at max_head_bytes: running out of it while the buffer goes on
// means the head is too large; running out of the buffer means we wait.
struct Cursor {
  const char* p;
  const char* end;
  bool truncated;

  ParseResult needMore() const {
    return truncated ? fail(ParseError::kHeadTooLarge) : ParseResult{};
  }
  // `q` holds a byte the grammar did not allow there. CR and LF get their own verdict: a lone one
  // is always kBareCr, a proper CRLF in the wrong place is `otherwise`. Waits if CR is last.
  ParseResult unexpected(const char* q, ParseError otherwise) const {
    if (*q == '\n') {
      return fail(ParseError::kBareCr);
    }
    if (*q == '\r') {
      if (q + 1 == end) {
        return needMore();
      }
      if (q[1] != '\n') {
        return fail(ParseError::kBareCr);
      }
    }
    return fail(otherwise);
  }
};

// Facts from the framing-relevant fields, gathered while the fields go by.
struct Framing {
  std::uint64_t content_length = 0;
  std::string_view host;
  unsigned content_length_count = 0;
  unsigned transfer_encoding_count = 0;
  unsigned host_count = 0;
  bool chunked_seen = false;
  bool chunked_final = false;  // the last transfer coding listed is chunked
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool connection_upgrade = false;
  bool upgrade_header = false;
  bool expect_continue = false;
};

bool parseContentLength(std::string_view v, std::uint64_t& out) {
  if (v.empty()) {
    return false;
  }
  std::uint64_t n = 0;
  for (const char c : v) {
    if (c < '0' || c > '9') {
      return false;
    }
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) {
      return false;
    }
    n = n * 10 + d;
  }
  out = n;
  return true;
}

void scanConnection(std::string_view value, Framing& f) {
  detail::forEachListElement(value, [&f](std::string_view token) {
    if (iequals(token, "close")) {
      f.connection_close = true;
    } else if (iequals(token, "keep-alive")) {
      f.connection_keep_alive = true;
    } else if (iequals(token, "upgrade")) {
      f.connection_upgrade = true;
    }
  });
}

// A response may carry other codings; only the last one decides framing (RFC 9112 §6.3).
// Requests are held to exactly "chunked" by the caller, so this only runs for responses.
ParseError scanResponseCodings(std::string_view value, Framing& f) {
  ParseError err = ParseError::kNone;
  detail::forEachListElement(value, [&](std::string_view element) {
    const char* b = element.data();
    const char* e = b + element.size();
    const char* t = detail::scanToken(b, e);
    const std::string_view coding(b, static_cast<std::size_t>(t - b));
    std::string_view rest(t, static_cast<std::size_t>(e - t));
    rest = detail::trimOws(rest);
    const bool chunked = iequals(coding, "chunked");
    if (coding.empty() || (!rest.empty() && (rest.front() != ';' || chunked)) ||
        (chunked && f.chunked_seen)) {
      err = ParseError::kBadTransferEncoding;
    }
    f.chunked_seen = f.chunked_seen || chunked;
    f.chunked_final = chunked;
  });
  return err;
}

// Dispatches on length first so the common fields cost one compare each.
template <bool kRequest>
ParseError onField(std::string_view name, std::string_view value, int version_minor, Framing& f) {
  switch (name.size()) {
    case 4:
      if (kRequest && iequals(name, "host")) {
        if (++f.host_count > 1) {
          return ParseError::kMultipleHost;
        }
        detail::Authority a;
        if (!detail::parseAuthority(value, a)) {
          return ParseError::kBadHost;
        }
        f.host = value;
      }
      break;
    case 6:
      if (kRequest && iequals(name, "expect") && iequals(value, "100-continue")) {
        f.expect_continue = true;
      }
      break;
    case 7:
      if (iequals(name, "upgrade")) {
        f.upgrade_header = true;
      }
      break;
    case 10:
      if (iequals(name, "connection")) {
        scanConnection(value, f);
      }
      break;
    case 14:
      if (iequals(name, "content-length")) {
        if (++f.content_length_count > 1) {
          return ParseError::kConflictingContentLength;
        }
        if (!parseContentLength(value, f.content_length)) {
          return ParseError::kBadContentLength;
        }
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means the framing is faulty.
        if (version_minor == 0) {
          return ParseError::kBadTransferEncoding;
        }
        ++f.transfer_encoding_count;
        if constexpr (kRequest) {
          if (f.transfer_encoding_count > 1 || !iequals(value, "chunked")) {
            return ParseError::kBadTransferEncoding;
          }
          f.chunked_seen = f.chunked_final = true;
        } else {
          return scanResponseCodings(value, f);
        }
      }
      break;
    default:
      break;
  }
  return ParseError::kNone;
}

// Field lines up to and including the blank line. On kComplete the cursor is past the head.
template <bool kRequest>
ParseResult parseFields(Cursor& c, Header* headers, std::size_t& count, std::size_t max_headers,
                        int version_minor, Framing& f) {
  const char* p = c.p;
  const char* const end = c.end;
  for (;;) {
    if (p == end) {
      return c.needMore();
    }
    const char first = *p;
    if (first == '\r') {
      if (p + 1 == end) {
        return c.needMore();
      }
      if (p[1] != '\n') {
        return fail(ParseError::kBareCr);
      }
      c.p = p + 2;
      return {ParseStatus::kComplete, ParseError::kNone, 0};
    }
    if (first == '\n') {
      return fail(ParseError::kBareCr);
    }
    if (detail::isWs(first)) {
      return fail(ParseError::kObsFold);
    }
    if (count == max_headers) {
      return fail(ParseError::kTooManyHeaders);
    }

    const char* const name = p;
    p = detail::scanToken(p, end);
    if (p == end) {
      return c.needMore();
    }
    // Covers whitespace before the colon, non-token bytes, an empty name and a missing colon.
    if (*p != ':' || p == name) {
      return c.unexpected(p, ParseError::kBadHeaderName);
    }
    const auto name_len = static_cast<std::size_t>(p - name);
    ++p;
    while (p < end && detail::isWs(*p)) {
      ++p;
    }
    const char* const value = p;
    p = detail::scanFieldValue(p, end);
    if (p == end) {
      return c.needMore();
    }
    if (*p != '\r') {
      return c.unexpected(p, ParseError::kBadHeaderValue);
    }
    if (p + 1 == end) {
      return c.needMore();
    }
    if (p[1] != '\n') {
      return fail(ParseError::kBareCr);
    }
    const char* value_end = p;
    while (value_end > value && detail::isWs(value_end[-1])) {
      --value_end;
    }
    p += 2;

    Header& h = headers[count++];
    h.name = std::string_view(name, name_len);
    h.value = std::string_view(value, static_cast<std::size_t>(value_end - value));
    if (const ParseError e = onField<kRequest>(h.name, h.value, version_minor, f);
        e != ParseError::kNone) {
      return fail(e);
    }
  }
}

bool keepAlive(int version_minor, const Framing& f) {
  if (f.connection_close) {
    return false;
  }
  return version_minor == 1 || f.connection_keep_alive;
}

// Classifies a target that is not origin-form and fills path/query/authority.
ParseError classifyTarget(RequestHead& out) {
  const std::string_view t = out.target;
  if (t[0] == '/') {
    if (out.method == "CONNECT") {
      return ParseError::kBadTarget;
    }
    const std::size_t q = t.find('?');
    out.path = t.substr(0, q);
    if (q != std::string_view::npos) {
      out.query = t.substr(q + 1);
    }
    return ParseError::kNone;
  }
  if (t == "*") {
    if (out.method != "OPTIONS") {
      return ParseError::kBadTarget;
    }
    out.path = t;
    return ParseError::kNone;
  }
  detail::Authority a;
  if (out.method == "CONNECT") {
    // authority-form: RFC 9110 §9.3.6 requires the port.
    if (!detail::parseAuthority(t, a) || a.port.empty()) {
      return ParseError::kBadTarget;
    }
    out.authority = t;
    return ParseError::kNone;
  }
  // absolute-form; only the schemes an HTTP ingress can serve.
  std::size_t scheme_len = 0;
  if (t.size() >= 7 && iequals(t.substr(0, 7), "http://")) {
    scheme_len = 7;
  } else if (t.size() >= 8 && iequals(t.substr(0, 8), "https://")) {
    scheme_len = 8;
  } else {
    return ParseError::kBadTarget;
  }
  const std::string_view rest = t.substr(scheme_len);
  const std::size_t auth_end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, auth_end);
  if (!detail::parseAuthority(authority, a)) {
    return ParseError::kBadTarget;
  }
  out.authority = authority;
  if (auth_end == std::string_view::npos) {
    out.path = kRootPath;
    return ParseError::kNone;
  }
  const std::string_view path_query = rest.substr(auth_end);
  const std::size_t q = path_query.find('?');
  out.path = q == 0 ? kRootPath : path_query.substr(0, q);
  if (q != std::string_view::npos) {
    out.query = path_query.substr(q + 1);
  }
  return ParseError::kNone;
}

void resetRequest(RequestHead& out) {
  out.method = out.target = out.path = out.query = out.authority = out.host = {};
  out.version_minor = 1;
  out.header_count = 0;
  out.body = BodyKind::kNone;
  out.content_length = 0;
  out.keep_alive = true;
  out.expect_continue = false;
  out.upgrade = false;
}

void resetResponse(ResponseHead& out) {
  out.status = 0;
  out.reason = {};
  out.version_minor = 1;
  out.header_count = 0;
  out.body = BodyKind::kNone;
  out.content_length = 0;
  out.keep_alive = true;
}

}  // namespace

int statusFor(ParseError e) {
  switch (e) {
    case ParseError::kRequestLineTooLong:
      return 414;
    case ParseError::kHeadTooLarge:
    case ParseError::kTooManyHeaders:
      return 431;
    case ParseError::kBodyTooLarge:
      return 413;
    default:
      return 400;
  }
}

std::string_view errorName(ParseError e) {
  switch (e) {
    case ParseError::kNone:
      return "none";
    case ParseError::kBadRequestLine:
      return "bad_request_line";
    case ParseError::kBadMethod:
      return "bad_method";
    case ParseError::kBadTarget:
      return "bad_target";
    case ParseError::kBadVersion:
      return "bad_version";
    case ParseError::kBadStatusLine:
      return "bad_status_line";
    case ParseError::kBadHeaderName:
      return "bad_header_name";
    case ParseError::kBadHeaderValue:
      return "bad_header_value";
    case ParseError::kObsFold:
      return "obs_fold";
    case ParseError::kBareCr:
      return "bare_cr";
    case ParseError::kRequestLineTooLong:
      return "request_line_too_long";
    case ParseError::kHeadTooLarge:
      return "head_too_large";
    case ParseError::kTooManyHeaders:
      return "too_many_headers";
    case ParseError::kBadContentLength:
      return "bad_content_length";
    case ParseError::kConflictingContentLength:
      return "conflicting_content_length";
    case ParseError::kContentLengthWithTransferEncoding:
      return "content_length_with_transfer_encoding";
    case ParseError::kBadTransferEncoding:
      return "bad_transfer_encoding";
    case ParseError::kMissingHost:
      return "missing_host";
    case ParseError::kMultipleHost:
      return "multiple_host";
    case ParseError::kBadHost:
      return "bad_host";
    case ParseError::kBadChunkSize:
      return "bad_chunk_size";
    case ParseError::kBadChunkExtension:
      return "bad_chunk_extension";
    case ParseError::kBadChunkData:
      return "bad_chunk_data";
    case ParseError::kBadTrailer:
      return "bad_trailer";
    case ParseError::kBodyTooLarge:
      return "body_too_large";
  }
  return "unknown";
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (detail::toLower(a[i]) != detail::toLower(b[i])) {
      return false;
    }
  }
  return true;
}

std::string_view findHeader(const Header* headers, std::size_t count, std::string_view name) {
  for (std::size_t i = 0; i < count; ++i) {
    if (iequals(headers[i].name, name)) {
      return headers[i].value;
    }
  }
  return {};
}

bool isHopByHop(std::string_view name, std::string_view connection_value) {
  switch (name.size()) {
    case 2:
      if (iequals(name, "te")) {
        return true;
      }
      break;
    case 7:
      if (iequals(name, "trailer") || iequals(name, "upgrade")) {
        return true;
      }
      break;
    case 10:
      if (iequals(name, "connection") || iequals(name, "keep-alive")) {
        return true;
      }
      break;
    case 16:
      if (iequals(name, "proxy-connection")) {
        return true;
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        return true;
      }
      break;
    default:
      break;
  }
  bool listed = false;
  detail::forEachListElement(connection_value, [&](std::string_view token) {
    listed = listed || (!token.empty() && iequals(token, name));
  });
  return listed;
}

namespace {

// RFC 9112 allows (and we bound) empty lines before a request line. kComplete: at the line.
ParseResult skipLeadingEmptyLines(Cursor& c) {
  for (std::size_t lines = 0;; ++lines) {
    if (c.p == c.end) {
      return c.needMore();
    }
    if (*c.p != '\r') {
      return {ParseStatus::kComplete, ParseError::kNone, 0};
    }
    if (c.p + 1 == c.end) {
      return c.needMore();
    }
    if (c.p[1] != '\n') {
      return fail(ParseError::kBareCr);
    }
    if (lines == kMaxLeadingEmptyLines) {
      return fail(ParseError::kBadRequestLine);
    }
    c.p += 2;
  }
}

// "METHOD SP target SP HTTP/1.x CRLF" into out; kComplete leaves the cursor after the CRLF.
ParseResult parseRequestLine(Cursor& c, std::string_view buf, RequestHead& out,
                             const Limits& limits) {
  // Method, target and version are scanned inside the request-line budget; hitting the budget
  // with more bytes in the buffer means the line is too long (its CRLF may lie past the budget).
  const char* const line = c.p;
  const auto line_offset = static_cast<std::size_t>(line - buf.data());
  const char* const line_end =
      line + std::min(static_cast<std::size_t>(c.end - line), limits.max_request_line);
  const auto lineNeedMore = [&](const char* at) {
    if (static_cast<std::size_t>(at - line) >= limits.max_request_line &&
        buf.size() > line_offset + limits.max_request_line) {
      return fail(ParseError::kRequestLineTooLong);
    }
    return c.needMore();
  };
  const char* q = detail::scanToken(line, line_end);
  if (q == line_end) {
    return lineNeedMore(q);
  }
  if (*q != ' ' || q == line) {
    const bool structural = q == line || *q == '\t' || *q == '\r' || *q == '\n';
    return c.unexpected(q, structural ? ParseError::kBadRequestLine : ParseError::kBadMethod);
  }
  out.method = std::string_view(line, static_cast<std::size_t>(q - line));
  const char* const target = q + 1;
  q = detail::scanTarget(target, line_end);
  if (q == line_end) {
    return lineNeedMore(q);
  }
  if (*q != ' ' || q == target) {
    const bool structural = q == target || *q == '\r' || *q == '\n';
    return c.unexpected(q, structural ? ParseError::kBadRequestLine : ParseError::kBadTarget);
  }
  out.target = std::string_view(target, static_cast<std::size_t>(q - target));
  const char* const version = q + 1;
  constexpr std::string_view kProto = "HTTP/1.";
  for (std::size_t i = 0; i <= kProto.size(); ++i) {
    const char* v = version + i;
    if (v == line_end) {
      return lineNeedMore(v);
    }
    if (i < kProto.size() ? *v != kProto[i] : (*v != '0' && *v != '1')) {
      return c.unexpected(
          v, i == 0 && *v == ' ' ? ParseError::kBadRequestLine : ParseError::kBadVersion);
    }
  }
  out.version_minor = version[kProto.size()] - '0';
  q = version + kProto.size() + 1;
  if (q == c.end) {
    return c.needMore();
  }
  if (*q != '\r') {
    return c.unexpected(
        q, is(*q, CharClass::kDigit) ? ParseError::kBadVersion : ParseError::kBadRequestLine);
  }
  if (q + 1 == c.end) {
    return c.needMore();
  }
  if (q[1] != '\n') {
    return fail(ParseError::kBareCr);
  }
  c.p = q + 2;
  return {ParseStatus::kComplete, ParseError::kNone, 0};
}

// "HTTP/1.x SP 3DIGIT" then either CRLF or SP reason CRLF. Unlike requests no empty lines are
// skipped: one before a response means the previous body was framed differently upstream.
ParseResult parseStatusLine(Cursor& c, ResponseHead& out) {
  const char* const begin = c.p;
  constexpr std::string_view kProto = "HTTP/1.";
  const char* p = c.p;
  constexpr std::size_t kStatusLinePrefix = kProto.size() + 5;  // minor, SP, 3DIGIT
  for (std::size_t i = 0; i < kStatusLinePrefix; ++i, ++p) {
    if (p == c.end) {
      return c.needMore();
    }
    const char ch = *p;
    bool ok = false;
    if (i < kProto.size()) {
      // "HTTP/" matched but not "1.": a protocol version we do not speak.
      if (ch != kProto[i] && i >= 5) {
        return c.unexpected(p, ParseError::kBadVersion);
      }
      ok = ch == kProto[i];
    } else if (i == kProto.size()) {
      if (ch != '0' && ch != '1') {
        return c.unexpected(p, ParseError::kBadVersion);
      }
      ok = true;
    } else if (i == kProto.size() + 1) {
      ok = ch == ' ';
    } else {
      ok = is(ch, CharClass::kDigit);
    }
    if (!ok) {
      return c.unexpected(p, ParseError::kBadStatusLine);
    }
  }
  out.version_minor = begin[kProto.size()] - '0';
  const char* digits = begin + kProto.size() + 2;
  out.status = (digits[0] - '0') * 100 + (digits[1] - '0') * 10 + (digits[2] - '0');
  if (out.status < 100 || out.status > 599) {
    return fail(ParseError::kBadStatusLine);
  }
  if (p == c.end) {
    return c.needMore();
  }
  if (*p == ' ') {
    const char* const reason = ++p;
    p = detail::scanFieldValue(p, c.end);
    if (p == c.end) {
      return c.needMore();
    }
    out.reason = std::string_view(reason, static_cast<std::size_t>(p - reason));
  }
  if (*p != '\r') {
    return c.unexpected(p, ParseError::kBadStatusLine);
  }
  if (p + 1 == c.end) {
    return c.needMore();
  }
  if (p[1] != '\n') {
    return fail(ParseError::kBareCr);
  }
  c.p = p + 2;
  return {ParseStatus::kComplete, ParseError::kNone, 0};
}

// RFC 9112 §6.3, in its order of precedence.
void responseFraming(ResponseHead& out, const Framing& f, std::string_view request_method) {
  out.keep_alive = keepAlive(out.version_minor, f);
  const int s = out.status;
  if (s < 200 || s == 204 || s == 304 || request_method == "HEAD" ||
      (request_method == "CONNECT" && s / 100 == 2)) {
    out.body = BodyKind::kNone;
  } else if (f.transfer_encoding_count != 0) {
    if (f.chunked_final) {
      out.body = BodyKind::kChunked;
    } else {
      out.body = BodyKind::kUntilClose;
      out.keep_alive = false;
    }
  } else if (f.content_length_count != 0) {
    if (f.content_length != 0) {
      out.body = BodyKind::kContentLength;
      out.content_length = f.content_length;
    }
  } else {
    out.body = BodyKind::kUntilClose;
    out.keep_alive = false;
  }
  // After 101 the connection speaks another protocol; it never returns to the pool.
  if (s == 101) {
    out.keep_alive = false;
  }
}

}  // namespace

ParseResult parseRequestHead(std::string_view buf, RequestHead& out, const Limits& limits) {
  resetRequest(out);
  const char* const begin = buf.data();
  Cursor c{begin, begin + std::min(buf.size(), limits.max_head_bytes),
           buf.size() > limits.max_head_bytes};
  if (const ParseResult r = skipLeadingEmptyLines(c); r.status != ParseStatus::kComplete) {
    return r;
  }
  if (const ParseResult r = parseRequestLine(c, buf, out, limits);
      r.status != ParseStatus::kComplete) {
    return r;
  }
  if (const ParseError e = classifyTarget(out); e != ParseError::kNone) {
    return fail(e);
  }
  Framing f;
  const std::size_t max_headers = std::min(limits.max_headers, kMaxHeaders);
  if (const ParseResult r =
          parseFields<true>(c, out.headers, out.header_count, max_headers, out.version_minor, f);
      r.status != ParseStatus::kComplete) {
    return r;
  }
  if (f.content_length_count != 0 && f.transfer_encoding_count != 0) {
    return fail(ParseError::kContentLengthWithTransferEncoding);
  }
  if (out.version_minor == 1 && f.host_count == 0) {
    return fail(ParseError::kMissingHost);
  }
  out.host = f.host;
  if (f.transfer_encoding_count != 0) {
    out.body = BodyKind::kChunked;
  } else if (f.content_length != 0) {
    out.body = BodyKind::kContentLength;
    out.content_length = f.content_length;
  }
  out.keep_alive = keepAlive(out.version_minor, f);
  out.expect_continue = f.expect_continue;
  out.upgrade = f.connection_upgrade && f.upgrade_header;
  return {ParseStatus::kComplete, ParseError::kNone, static_cast<std::size_t>(c.p - begin)};
}

ParseResult parseResponseHead(std::string_view buf, ResponseHead& out,
                              std::string_view request_method, const Limits& limits) {
  resetResponse(out);
  const char* const begin = buf.data();
  Cursor c{begin, begin + std::min(buf.size(), limits.max_head_bytes),
           buf.size() > limits.max_head_bytes};
  if (const ParseResult r = parseStatusLine(c, out); r.status != ParseStatus::kComplete) {
    return r;
  }
  Framing f;
  const std::size_t max_headers = std::min(limits.max_headers, kMaxHeaders);
  if (const ParseResult r =
          parseFields<false>(c, out.headers, out.header_count, max_headers, out.version_minor, f);
      r.status != ParseStatus::kComplete) {
    return r;
  }
  if (f.content_length_count != 0 && f.transfer_encoding_count != 0) {
    return fail(ParseError::kContentLengthWithTransferEncoding);
  }
  responseFraming(out, f, request_method);
  return {ParseStatus::kComplete, ParseError::kNone, static_cast<std::size_t>(c.p - begin)};
}

}  // namespace sluice::http
