// Authority validation and the path/host normalizers used for routing. Routing decisions are made
// on normalized forms so that "/a/%2e%2e/admin" cannot reach a route that "/admin" would not.
#include "http/normalize.hpp"

#include "http/parser.hpp"
#include "http/syntax.hpp"

namespace sluice::http {
namespace detail {
namespace {

constexpr std::size_t kMaxPortDigits = 5;
constexpr unsigned kMaxPort = 65535;

}  // namespace

// RFC 3986 dec-octet: no leading zeros, so "01.2.3.4" is not an address.
bool validIpv4(std::string_view s) {
  int octets = 0;
  std::size_t i = 0;
  for (;;) {
    const std::size_t start = i;
    unsigned value = 0;
    while (i < s.size() && is(s[i], kDigit) && i - start < 3) {
      value = value * 10 + static_cast<unsigned>(s[i] - '0');
      ++i;
    }
    const std::size_t len = i - start;
    if (len == 0 || value > 255 || (len > 1 && s[start] == '0')) {
      return false;
    }
    if (++octets == 4) {
      return i == s.size();
    }
    if (i == s.size() || s[i] != '.') {
      return false;
    }
    ++i;
  }
}

// RFC 3986 IPv6address: eight 16-bit groups, one "::" standing for one or more zero groups, and
// an optional embedded IPv4 address as the last 32 bits.
bool validIpv6(std::string_view s) {
  int groups = 0;
  bool elided = false;
  std::size_t i = 0;
  if (s.size() >= 2 && s[0] == ':' && s[1] == ':') {
    elided = true;
    i = 2;
    if (i == s.size()) {
      return true;
    }
  }
  for (;;) {
    const std::size_t start = i;
    while (i < s.size() && is(s[i], kHexDigit) && i - start < 5) {
      ++i;
    }
    if (i < s.size() && s[i] == '.') {
      if (!validIpv4(s.substr(start))) {
        return false;
      }
      groups += 2;
      break;
    }
    const std::size_t len = i - start;
    if (len == 0 || len > 4) {
      return false;
    }
    ++groups;
    if (i == s.size()) {
      break;
    }
    if (s[i] != ':') {
      return false;
    }
    ++i;
    if (i < s.size() && s[i] == ':') {
      if (elided) {
        return false;
      }
      elided = true;
      ++i;
      if (i == s.size()) {
        break;
      }
    } else if (i == s.size()) {
      return false;
    }
  }
  return elided ? groups <= 7 : groups == 8;
}

namespace {

bool validRegName(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !is(s[i + 1], kHexDigit) || !is(s[i + 2], kHexDigit)) {
        return false;
      }
      i += 2;
    } else if (!is(s[i], kRegName)) {
      return false;
    }
  }
  return true;
}

bool validPort(std::string_view s) {
  if (s.empty() || s.size() > kMaxPortDigits) {
    return false;
  }
  unsigned value = 0;
  for (const char c : s) {
    if (!is(c, kDigit)) {
      return false;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= kMaxPort;
}

}  // namespace

bool parseAuthority(std::string_view text, Authority& out) {
  std::size_t host_end = 0;
  if (!text.empty() && text[0] == '[') {
    host_end = text.find(']');
    if (host_end == std::string_view::npos || !validIpv6(text.substr(1, host_end - 1))) {
      return false;
    }
    ++host_end;
  } else {
    host_end = text.find(':');
    if (host_end == std::string_view::npos) {
      host_end = text.size();
    }
    if (!validRegName(text.substr(0, host_end))) {
      return false;
    }
  }
  out.host = text.substr(0, host_end);
  out.port = {};
  if (host_end == text.size()) {
    return true;
  }
  // RFC 3986 allows an empty port; nothing legitimate sends one, so it is refused.
  if (text[host_end] != ':' || !validPort(text.substr(host_end + 1))) {
    return false;
  }
  out.port = text.substr(host_end + 1);
  return true;
}

}  // namespace detail

std::string_view pathErrorName(PathError e) {
  switch (e) {
    case PathError::kNone:
      return "none";
    case PathError::kNotOriginForm:
      return "not_origin_form";
    case PathError::kBadByte:
      return "bad_byte";
    case PathError::kBadEscape:
      return "bad_escape";
    case PathError::kEscapedSlash:
      return "escaped_slash";
    case PathError::kBackslash:
      return "backslash";
    case PathError::kAboveRoot:
      return "above_root";
  }
  return "unknown";
}

namespace {

constexpr char kUpperHex[] = "0123456789ABCDEF";

// Copies one segment (up to the next raw '/') from path[i] into out[w], decoding unreserved
// escapes and upper-casing the others. Advances i and w; `param` receives the output offset of
// the segment's first raw ';' (or w at the end when there is none).
PathError copySegment(std::string_view path, const PathOptions& options, std::size_t& i, char* out,
                      std::size_t& w, std::size_t& param) {
  const bool keep = options.escaped_slashes == EscapedSlashes::kKeep;
  const std::size_t n = path.size();
  param = std::string_view::npos;
  for (; i < n && path[i] != '/'; ++i) {
    const char c = path[i];
    if (c == '%') {
      if (n - i < 3) {
        return PathError::kBadEscape;
      }
      const int hi = detail::hexValue(path[i + 1]);
      const int lo = detail::hexValue(path[i + 2]);
      if (hi < 0 || lo < 0) {
        return PathError::kBadEscape;
      }
      const auto decoded = static_cast<char>(hi * 16 + lo);
      if (detail::is(decoded, detail::kUnreserved)) {
        out[w++] = decoded;
      } else if ((decoded == '/' || decoded == '\\') && !keep) {
        return PathError::kEscapedSlash;
      } else {
        out[w++] = '%';
        out[w++] = kUpperHex[hi];
        out[w++] = kUpperHex[lo];
      }
      i += 2;
    } else if (!detail::is(c, detail::kTargetByte) || c == '?') {
      return PathError::kBadByte;
    } else if (c == '\\' && !keep) {
      return PathError::kBackslash;
    } else {
      if (c == ';' && param == std::string_view::npos) {
        param = w;
      }
      out[w++] = c;
    }
  }
  if (param == std::string_view::npos) {
    param = w;
  }
  return PathError::kNone;
}

}  // namespace

PathError normalizePath(std::string_view path, const PathOptions& options, char* out,
                        std::size_t& out_len) {
  out_len = 0;
  if (path == "*") {
    out[0] = '*';
    out_len = 1;
    return PathError::kNone;
  }
  if (path.empty() || path[0] != '/') {
    return PathError::kNotOriginForm;
  }
  // One pass over "/segment" units: a run of slashes opens one segment, which is copied into
  // `out` decoded, then judged as RFC 3986 §5.2.4 remove_dot_segments would judge it with its
  // ";" parameters cut off, so "%2e%2e;x" is a ".." too. Merging and decoding only shrink, so
  // the write index never passes the read index and the output fits in path.size().
  const std::size_t n = path.size();
  std::size_t i = 0;
  std::size_t w = 0;
  while (i < n) {
    while (i + 1 < n && path[i + 1] == '/') {
      ++i;
    }
    out[w] = '/';
    const std::size_t seg = ++w;
    ++i;
    std::size_t param = 0;
    if (const PathError e = copySegment(path, options, i, out, w, param); e != PathError::kNone) {
      return e;
    }
    const std::size_t name_len = param - seg;
    const bool dot = name_len == 1 && out[seg] == '.';
    const bool dot_dot = name_len == 2 && out[seg] == '.' && out[seg + 1] == '.';
    if (!dot && !dot_dot) {
      continue;
    }
    w = seg - 1;  // drop "/" and the segment with its parameters
    if (dot_dot) {
      if (w == 0) {
        return PathError::kAboveRoot;
      }
      do {
        --w;
      } while (out[w] != '/');
    }
    // A dot-segment at the end still names a directory: "/a/b/.." is "/a/".
    if (i == n) {
      out[w++] = '/';
    }
  }
  out_len = w;
  return PathError::kNone;
}

bool normalizePath(std::string_view path, char* out, std::size_t& out_len) {
  return normalizePath(path, PathOptions{}, out, out_len) == PathError::kNone;
}

namespace {

constexpr std::size_t kMaxDnsName = 253;
constexpr std::size_t kMaxDnsLabel = 63;

bool allOf(std::string_view s, detail::CharClass cls) {
  for (const char c : s) {
    if (!detail::is(c, cls)) {
      return false;
    }
  }
  return true;
}

// LDH labels (RFC 1123, without the hyphen placement rule), or an IPv4 dotted quad. A name whose
// last label is a number ("1.2.3", "10.1", "0x7f") is what URL parsers and inet_aton read as an
// IPv4 address in another spelling; only the dotted quad is accepted, so one address has one key.
bool validDnsName(std::string_view h) {
  if (h.empty() || h.size() > kMaxDnsName) {
    return false;
  }
  std::size_t label = 0;
  std::size_t last = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    const char c = h[i];
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
      last = i + 1;
    } else {
      // Unreserved without '.', '_' and '~': letters, digits and '-'.
      const bool ldh = detail::is(c, detail::kUnreserved) && c != '_' && c != '~';
      if (!ldh || ++label > kMaxDnsLabel) {
        return false;
      }
    }
  }
  if (label == 0) {
    return false;
  }
  const std::string_view tail = h.substr(last);
  if (allOf(tail, detail::kDigit)) {
    return detail::validIpv4(h);
  }
  const bool hex_number = tail.size() >= 2 && tail[0] == '0' &&
                          (tail[1] == 'x' || tail[1] == 'X') &&
                          allOf(tail.substr(2), detail::kHexDigit);
  return !hex_number;
}

}  // namespace

bool normalizeHost(std::string_view host, char* out, std::size_t& out_len) {
  out_len = 0;
  detail::Authority a;
  if (!detail::parseAuthority(host, a)) {
    return false;
  }
  std::string_view h = a.host;
  if (h.front() != '[') {
    // The root label: "example.com." names the same host. An empty label before it does not.
    if (h.back() == '.') {
      h.remove_suffix(1);
    }
    if (!validDnsName(h)) {
      return false;
    }
  }
  for (std::size_t i = 0; i < h.size(); ++i) {
    out[i] = detail::toLower(h[i]);
  }
  out_len = h.size();
  return true;
}

}  // namespace sluice::http
