#include "common/cidr.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace sluice::net {
namespace {

constexpr unsigned kV4Bits = 32;
constexpr unsigned kV6Bits = 128;
// ::ffff:0:0/96, the IPv4-mapped block: ten zero bytes, then two 0xff.
constexpr std::size_t kMappedPrefixBytes = 12;
constexpr unsigned kMappedPrefixBits = 96;
// Longer than any IPv6 literal inet_pton accepts (45 bytes with an embedded IPv4 address).
constexpr std::size_t kMaxAddressText = 64;

bool isMapped(const std::uint8_t* a) {
  static constexpr std::uint8_t kMapped[kMappedPrefixBytes] = {0, 0, 0, 0, 0,    0,
                                                               0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, kMapped, kMappedPrefixBytes) == 0;
}

// An IP literal into network-order bytes: IPv4 in the first 4 bytes. Accepts what inet_pton
// does, which refuses IPv4 octets with leading zeros, zone ids and brackets.
bool parseAddress(std::string_view text, bool& v6, std::uint8_t* bytes) {
  if (text.empty() || text.size() >= kMaxAddressText) {
    return false;
  }
  char buf[kMaxAddressText];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  v6 = text.find(':') != std::string_view::npos;
  return inet_pton(v6 ? AF_INET6 : AF_INET, buf, bytes) == 1;
}

void clearHostBits(std::uint8_t* bytes, unsigned prefix, unsigned bits) {
  for (unsigned bit = prefix; bit < bits; ++bit) {
    bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80U >> (bit % 8)));
  }
}

Error bad(std::string_view text, std::string_view why) {
  return Error("bad CIDR \"" + std::string(text) + "\": " + std::string(why));
}

}  // namespace

bool Cidr::contains(const std::uint8_t* address) const noexcept {
  const unsigned whole = prefix / 8;
  if (std::memcmp(address, bytes.data(), whole) != 0) {
    return false;
  }
  const unsigned rest = prefix % 8;
  if (rest == 0) {
    return true;
  }
  const auto mask = static_cast<std::uint8_t>(0xff00U >> rest);
  return (address[whole] & mask) == bytes[whole];
}

std::string Cidr::text() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix);
}

Result<Cidr> parseCidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  Cidr c;
  if (!parseAddress(address, c.v6, c.bytes.data())) {
    return bad(text, "not an IP address");
  }
  const unsigned bits = c.v6 ? kV6Bits : kV4Bits;
  c.prefix = bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const char* end = digits.data() + digits.size();
    auto [p, ec] = std::from_chars(digits.data(), end, c.prefix);
    if (digits.empty() || ec != std::errc() || p != end ||
        (digits.size() > 1 && digits[0] == '0') || c.prefix > bits) {
      return bad(text, "the prefix length must be 0-" + std::to_string(bits));
    }
  }
  Cidr masked = c;
  clearHostBits(masked.bytes.data(), c.prefix, bits);
  if (masked != c) {
    return bad(text, "host bits are set (write " + masked.text() + " or a single address)");
  }
  if (c.v6 && c.prefix >= kMappedPrefixBits && isMapped(c.bytes.data())) {
    Cidr v4;
    std::memcpy(v4.bytes.data(), c.bytes.data() + kMappedPrefixBytes, 4);
    v4.prefix = c.prefix - kMappedPrefixBits;
    return v4;
  }
  return c;
}

CidrSet::CidrSet(std::vector<Cidr> ranges) : ranges_(std::move(ranges)) {}

bool CidrSet::containsBytes(bool v6, const std::uint8_t* address) const noexcept {
  if (v6 && isMapped(address)) {
    v6 = false;
    address += kMappedPrefixBytes;
  }
  for (const Cidr& c : ranges_) {
    if (c.v6 == v6 && c.contains(address)) {
      return true;
    }
  }
  return false;
}

bool CidrSet::contains(const boost::asio::ip::address& address) const noexcept {
  if (address.is_v4()) {
    const auto bytes = address.to_v4().to_bytes();
    return containsBytes(false, bytes.data());
  }
  const auto bytes = address.to_v6().to_bytes();
  return containsBytes(true, bytes.data());
}

bool CidrSet::containsText(std::string_view address) const noexcept {
  std::uint8_t bytes[16] = {};
  bool v6 = false;
  return parseAddress(address, v6, bytes) && containsBytes(v6, bytes);
}

bool CidrSet::matchText(const void* set, std::string_view address) noexcept {
  return static_cast<const CidrSet*>(set)->containsText(address);
}

std::string CidrSet::text() const {
  std::string out;
  for (const Cidr& c : ranges_) {
    out.append(out.empty() ? "" : ",").append(c.text());
  }
  return out;
}

Result<CidrSet> parseCidrs(std::string_view comma_separated) {
  std::vector<Cidr> ranges;
  const auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
      s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
      s.remove_suffix(1);
    }
    return s;
  };
  if (trim(comma_separated).empty()) {
    return CidrSet();
  }
  std::string_view rest = comma_separated;
  std::size_t entry = 0;
  for (;;) {
    ++entry;
    const std::size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    if (item.empty()) {
      return Error("entry " + std::to_string(entry) + ": empty CIDR in \"" +
                   std::string(comma_separated) + "\"");
    }
    Result<Cidr> c = parseCidr(item);
    if (!c) {
      return c.error().wrap("entry " + std::to_string(entry));
    }
    ranges.push_back(*c);
    if (comma == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(comma + 1);
  }
  return CidrSet(std::move(ranges));
}

}  // namespace sluice::net
