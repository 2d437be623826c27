// Authority validation and the path/host normalizers used for routing. Routing decisions are made
// on normalized forms so that "/a/%2e%2e/admin" cannot reach a route that "/admin" would not.
#include "http/parser.hpp"
#include "http/syntax.hpp"

namespace sluice::http {
namespace detail {
namespace {

constexpr std::size_t kMaxPortDigits = 5;
constexpr unsigned kMaxPort = 65535;

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

bool normalizePath(std::string_view path, char* out, std::size_t& out_len) {
  out_len = 0;
  if (path == "*") {
    out[0] = '*';
    out_len = 1;
    return true;
  }
  if (path.empty() || path[0] != '/') {
    return false;
  }

  // One pass over "/segment" units: each segment is decoded into `out` (unreserved escapes
  // decoded, the rest upper-cased), then judged as RFC 3986 §5.2.4 remove_dot_segments would
  // judge it, so "%2e%2e" is a ".." too. Decoding only shrinks, so the write index never passes
  // the read index and the output fits in path.size(). Empty segments ("//") are kept.
  constexpr char kHex[] = "0123456789ABCDEF";
  const std::size_t n = path.size();
  std::size_t i = 0;
  std::size_t w = 0;
  while (i < n) {
    out[w] = '/';
    const std::size_t seg = ++w;
    for (++i; i < n && path[i] != '/'; ++i) {
      const char c = path[i];
      if (c == '%') {
        if (n - i < 3) {
          return false;
        }
        const int hi = detail::hexValue(path[i + 1]);
        const int lo = detail::hexValue(path[i + 2]);
        if (hi < 0 || lo < 0) {
          return false;
        }
        const auto decoded = static_cast<char>(hi * 16 + lo);
        if (detail::is(decoded, detail::kUnreserved)) {
          out[w++] = decoded;
        } else {
          out[w++] = '%';
          out[w++] = kHex[hi];
          out[w++] = kHex[lo];
        }
        i += 2;
      } else if (!detail::is(c, detail::kTargetByte) || c == '?') {
        return false;
      } else {
        out[w++] = c;
      }
    }
    const std::size_t seg_len = w - seg;
    if (seg_len == 0 || out[seg] != '.' || seg_len > 2 || (seg_len == 2 && out[seg + 1] != '.')) {
      continue;
    }
    w = seg - 1;  // drop "/." or "/.."
    if (seg_len == 2) {
      if (w == 0) {  // climbs above the root
        return false;
      }
      do {
        --w;
      } while (out[w] != '/');
    }
    // A dot segment at the end still names a directory: "/a/b/.." is "/a/".
    if (i == n) {
      out[w++] = '/';
    }
  }
  out_len = w;
  return true;
}

bool normalizeHost(std::string_view host, char* out, std::size_t& out_len) {
  out_len = 0;
  detail::Authority a;
  if (!detail::parseAuthority(host, a)) {
    return false;
  }
  std::string_view h = a.host;
  if (h.front() != '[' && h.back() == '.') {
    // The root label: "example.com." names the same host. An empty label before it does not.
    h.remove_suffix(1);
    if (h.empty() || h.back() == '.') {
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
