// PROXY protocol v1/v2 parsing. Every verdict depends only on the bytes it looked at, in order,
// so a prefix never gives another error than the whole header would.
#include "http/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "http/syntax.hpp"

namespace sluice::http {
namespace {

constexpr std::string_view kV1Signature = "PROXY ";
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
// The CR of a v1 line is at most here, so that the whole line with CRLF fits 107 bytes.
constexpr std::size_t kV1LastCr = kProxyV1MaxLine - 2;
constexpr std::uint8_t kV2Version = 0x2;
constexpr std::uint8_t kCommandLocal = 0x0;
constexpr std::uint8_t kCommandProxy = 0x1;
constexpr std::uint8_t kTcp4 = 0x11;
constexpr std::uint8_t kTcp6 = 0x21;
constexpr std::size_t kTcp4AddressBytes = 12;
constexpr std::size_t kTcp6AddressBytes = 36;
constexpr std::size_t kTlvHeaderBytes = 3;
constexpr std::size_t kMaxPortDigits = 5;
constexpr unsigned kMaxPort = 65535;

ProxyHeader fail(ProxyHeader r, ProxyError e) {
  r.status = ProxyStatus::kError;
  r.error = e;
  r.consumed = 0;
  return r;
}

// The signature's first min(size, signature) bytes match.
bool signaturePrefix(std::string_view in, std::string_view signature) {
  const std::size_t n = std::min(in.size(), signature.size());
  return in.substr(0, n) == signature.substr(0, n);
}

bool parsePort(std::string_view s, std::uint16_t& port) {
  if (s.empty() || s.size() > kMaxPortDigits || (s.size() > 1 && s[0] == '0')) {
    return false;
  }
  unsigned value = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > kMaxPort) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

bool parseAddress(std::string_view s, bool v6, ProxyAddress& out) {
  if (v6 ? !detail::validIpv6(s) : !detail::validIpv4(s)) {
    return false;
  }
  char text[64];  // validated above: an IPv6 literal is at most 45 bytes
  if (s.size() >= sizeof text) {
    return false;
  }
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = '\0';
  out.v6 = v6;
  return inet_pton(v6 ? AF_INET6 : AF_INET, text, out.bytes.data()) == 1;
}

// Splits off the next single-space-separated field; false when it is empty (two spaces, a
// leading or trailing space).
bool nextField(std::string_view& rest, std::string_view& field) {
  const std::size_t space = rest.find(' ');
  field = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  return !field.empty() && (space == std::string_view::npos || !rest.empty());
}

// The v1 line without "PROXY " and CRLF.
ProxyHeader parseV1Line(std::string_view line, ProxyHeader r) {
  std::string_view protocol;
  if (line.starts_with("UNKNOWN") && (line.size() == 7 || line[7] == ' ')) {
    // Whatever follows UNKNOWN is to be ignored (the spec); it was checked to be printable.
    r.command = ProxyCommand::kUnknown;
    r.status = ProxyStatus::kComplete;
    return r;
  }
  if (!nextField(line, protocol)) {
    return fail(r, ProxyError::kV1BadLine);
  }
  if (protocol != "TCP4" && protocol != "TCP6") {
    return fail(r, ProxyError::kV1BadProtocol);
  }
  const bool v6 = protocol == "TCP6";
  std::string_view fields[4];
  for (std::string_view& field : fields) {
    if (line.empty() || !nextField(line, field)) {
      return fail(r, ProxyError::kV1BadLine);
    }
  }
  if (!line.empty()) {
    return fail(r, ProxyError::kV1BadLine);
  }
  if (!parseAddress(fields[0], v6, r.source) || !parseAddress(fields[1], v6, r.destination)) {
    return fail(r, ProxyError::kV1BadAddress);
  }
  if (!parsePort(fields[2], r.source.port) || !parsePort(fields[3], r.destination.port)) {
    return fail(r, ProxyError::kV1BadPort);
  }
  r.command = ProxyCommand::kProxy;
  r.status = ProxyStatus::kComplete;
  return r;
}

ProxyHeader parseV1(std::string_view in) {
  ProxyHeader r;
  r.version = 1;
  if (in.size() < kV1Signature.size()) {
    return r;
  }
  for (std::size_t i = kV1Signature.size(); i < in.size(); ++i) {
    if (i > kV1LastCr) {
      return fail(r, ProxyError::kV1TooLong);
    }
    const auto c = static_cast<unsigned char>(in[i]);
    if (c == '\r') {
      if (i + 1 == in.size()) {
        return r;
      }
      if (in[i + 1] != '\n') {
        return fail(r, ProxyError::kV1BadLine);
      }
      r = parseV1Line(in.substr(kV1Signature.size(), i - kV1Signature.size()), r);
      if (r.status == ProxyStatus::kComplete) {
        r.consumed = i + 2;
      }
      return r;
    }
    if (c < 0x20 || c > 0x7e) {
      return fail(r, ProxyError::kV1BadLine);
    }
  }
  return r;
}

std::uint16_t be16(std::string_view in, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<unsigned char>(in[at]) << 8) |
                                    static_cast<unsigned char>(in[at + 1]));
}

void readV2Addresses(std::string_view in, bool v6, ProxyHeader& r) {
  const std::size_t len = v6 ? 16 : 4;
  const std::size_t at = kProxyV2HeaderBytes;
  r.source.v6 = r.destination.v6 = v6;
  std::memcpy(r.source.bytes.data(), in.data() + at, len);
  std::memcpy(r.destination.bytes.data(), in.data() + at + len, len);
  r.source.port = be16(in, at + 2 * len);
  r.destination.port = be16(in, at + 2 * len + 2);
}

ProxyHeader parseV2(std::string_view in, std::size_t max_bytes) {
  ProxyHeader r;
  r.version = 2;
  if (in.size() <= kV2Signature.size()) {
    return r;
  }
  const auto ver_cmd = static_cast<std::uint8_t>(in[12]);
  if ((ver_cmd >> 4) != kV2Version) {
    return fail(r, ProxyError::kV2BadVersion);
  }
  const std::uint8_t command = ver_cmd & 0x0f;
  if (command != kCommandLocal && command != kCommandProxy) {
    return fail(r, ProxyError::kV2BadCommand);
  }
  if (in.size() < 14) {
    return r;
  }
  const auto family = static_cast<std::uint8_t>(in[13]);
  if (command == kCommandProxy && family != kTcp4 && family != kTcp6) {
    return fail(r, ProxyError::kV2BadFamily);
  }
  if (in.size() < kProxyV2HeaderBytes) {
    return r;
  }
  const std::size_t total = kProxyV2HeaderBytes + be16(in, 14);
  if (total > max_bytes) {
    return fail(r, ProxyError::kV2TooLong);
  }
  std::size_t addresses = 0;
  if (command == kCommandProxy) {
    addresses = family == kTcp4 ? kTcp4AddressBytes : kTcp6AddressBytes;
  }
  if (total - kProxyV2HeaderBytes < addresses) {
    return fail(r, ProxyError::kV2ShortAddress);
  }
  if (in.size() < total) {
    return r;
  }
  if (command == kCommandProxy) {
    // TLVs (type, 16-bit length, value) must tile the rest exactly; their content is not used.
    for (std::size_t at = kProxyV2HeaderBytes + addresses; at < total;) {
      if (total - at < kTlvHeaderBytes || total - at - kTlvHeaderBytes < be16(in, at + 1)) {
        return fail(r, ProxyError::kV2BadTlv);
      }
      at += kTlvHeaderBytes + be16(in, at + 1);
    }
    readV2Addresses(in, family == kTcp6, r);
  }
  r.command = command == kCommandProxy ? ProxyCommand::kProxy : ProxyCommand::kLocal;
  r.status = ProxyStatus::kComplete;
  r.consumed = total;
  return r;
}

}  // namespace

std::string_view proxyErrorName(ProxyError e) {
  switch (e) {
    case ProxyError::kNone:
      return "none";
    case ProxyError::kNoSignature:
      return "no_signature";
    case ProxyError::kV1TooLong:
      return "v1_too_long";
    case ProxyError::kV1BadLine:
      return "v1_bad_line";
    case ProxyError::kV1BadProtocol:
      return "v1_bad_protocol";
    case ProxyError::kV1BadAddress:
      return "v1_bad_address";
    case ProxyError::kV1BadPort:
      return "v1_bad_port";
    case ProxyError::kV2BadVersion:
      return "v2_bad_version";
    case ProxyError::kV2BadCommand:
      return "v2_bad_command";
    case ProxyError::kV2BadFamily:
      return "v2_bad_family";
    case ProxyError::kV2TooLong:
      return "v2_too_long";
    case ProxyError::kV2ShortAddress:
      return "v2_short_address";
    case ProxyError::kV2BadTlv:
      return "v2_bad_tlv";
  }
  return "unknown";
}

ProxyHeader parseProxyProtocol(std::string_view prefix, std::size_t max_v2_bytes) {
  if (prefix.empty()) {
    return {};
  }
  if (signaturePrefix(prefix, kV1Signature)) {
    return parseV1(prefix);
  }
  if (signaturePrefix(prefix, kV2Signature)) {
    return parseV2(prefix, max_v2_bytes);
  }
  return fail({}, ProxyError::kNoSignature);
}

namespace {

// `a` as 16 bytes of IPv6 (an IPv4 address mapped: ::ffff:a.b.c.d).
std::array<std::uint8_t, 16> asV6(const ProxyAddress& a) {
  if (a.v6) {
    return a.bytes;
  }
  std::array<std::uint8_t, 16> out{};
  out[10] = 0xff;
  out[11] = 0xff;
  std::copy(a.bytes.begin(), a.bytes.begin() + 4, out.begin() + 12);
  return out;
}

}  // namespace

void appendProxyV2(const ProxyAddress& source, const ProxyAddress& destination, std::string& out) {
  static constexpr char kSignature[] = "\r\n\r\n\0\r\nQUIT\n";
  out.append(kSignature, 12);
  const bool v6 = source.v6 || destination.v6;
  out.push_back(static_cast<char>(0x21));              // version 2, PROXY
  out.push_back(static_cast<char>(v6 ? 0x21 : 0x11));  // TCP over IPv6 / IPv4
  const std::uint16_t len = v6 ? 36 : 12;
  out.push_back(static_cast<char>(len >> 8));
  out.push_back(static_cast<char>(len & 0xff));
  auto bytes = [&](const std::uint8_t* p, std::size_t n) {
    out.append(reinterpret_cast<const char*>(p), n);
  };
  if (v6) {
    const auto s6 = asV6(source);
    const auto d6 = asV6(destination);
    bytes(s6.data(), 16);
    bytes(d6.data(), 16);
  } else {
    bytes(source.bytes.data(), 4);
    bytes(destination.bytes.data(), 4);
  }
  for (const std::uint16_t port : {source.port, destination.port}) {
    out.push_back(static_cast<char>(port >> 8));
    out.push_back(static_cast<char>(port & 0xff));
  }
}

}  // namespace sluice::http
