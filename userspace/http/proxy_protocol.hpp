// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that an L4 load
// balancer puts in front of a connection's first bytes to pass on the client's address. Parsed
// strictly from a prefix of the connection's bytes, with no allocation: call again with the
// grown prefix while it returns kIncomplete. A header is taken only from --trusted-proxies
// (the agent checks the peer before calling this), and an error closes the connection.
//
// Accepted: v1 "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n" (single spaces, addresses of
// the named family, ports 0-65535 without leading zeros, at most 107 bytes) and
// "PROXY UNKNOWN[ <anything printable>]\r\n"; v2 with version 2, the LOCAL command (any family;
// the address block is skipped, as the spec requires) or the PROXY command with TCP over IPv4 or
// IPv6, a length that holds the addresses, TLVs that tile the rest exactly (skipped), and a
// whole header of at most max_v2_bytes. Everything else is an error: UDP, UNIX sockets,
// AF_UNSPEC with PROXY, other versions and commands.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::http {

enum class ProxyStatus : std::uint8_t {
  kIncomplete,  // a valid prefix of a header so far: read more
  kComplete,    // a header of `consumed` bytes; the connection's own bytes follow
  kError,       // not a valid PROXY protocol header: close the connection
};

enum class ProxyError : std::uint8_t {
  kNone,
  kNoSignature,     // neither "PROXY " nor the v2 signature
  kV1TooLong,       // no CRLF within 107 bytes
  kV1BadLine,       // a byte outside printable ASCII, a lone CR or LF, empty or extra fields
  kV1BadProtocol,   // not TCP4, TCP6 or UNKNOWN
  kV1BadAddress,    // not an address of the named family
  kV1BadPort,       // not 0-65535 in decimal without leading zeros
  kV2BadVersion,    // version nibble is not 2
  kV2BadCommand,    // neither LOCAL nor PROXY
  kV2BadFamily,     // PROXY with anything but TCP over IPv4 or IPv6
  kV2TooLong,       // the header's length is over the limit
  kV2ShortAddress,  // the length cannot hold the family's addresses
  kV2BadTlv,        // TLVs do not tile the rest of the header
};
inline constexpr std::size_t kProxyErrorCount = static_cast<std::size_t>(ProxyError::kV2BadTlv) + 1;

// A short stable name for metrics and logs, e.g. "v1_bad_address".
std::string_view proxyErrorName(ProxyError e);

enum class ProxyCommand : std::uint8_t {
  kProxy,    // addresses are the original connection's: use them
  kLocal,    // v2 LOCAL (the balancer's own health check): use the real endpoints
  kUnknown,  // v1 UNKNOWN: use the real endpoints
};

struct ProxyAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 in the first 4 bytes
  std::uint16_t port = 0;
};

struct ProxyHeader {
  ProxyStatus status = ProxyStatus::kIncomplete;
  ProxyError error = ProxyError::kNone;
  std::size_t consumed = 0;  // header bytes (kComplete only)
  int version = 0;           // 1 or 2, once known
  ProxyCommand command = ProxyCommand::kUnknown;
  ProxyAddress source;       // kProxy only: the client
  ProxyAddress destination;  // kProxy only: the address the client connected to
};

inline constexpr std::size_t kProxyV1MaxLine = 107;
inline constexpr std::size_t kProxyV2HeaderBytes = 16;
inline constexpr std::size_t kProxyV2DefaultMax = 4096;

// Parses the PROXY protocol header at the start of `prefix`. Stateless; a prefix of any input
// gives kIncomplete or the verdict of the whole input, and errors are reported as early as the
// bytes allow (the first byte that cannot start a header fails at once).
ProxyHeader parseProxyProtocol(std::string_view prefix,
                               std::size_t max_v2_bytes = kProxyV2DefaultMax);

// A PROXY protocol v2 PROXY header for a TCP connection from `source` to `destination` (both
// IPv4, or both IPv6; a mixed pair is sent as IPv6 with the IPv4 one mapped), appended to `out`.
void appendProxyV2(const ProxyAddress& source, const ProxyAddress& destination, std::string& out);

}  // namespace sluice::http
