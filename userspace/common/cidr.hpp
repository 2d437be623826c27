// Sets of IPv4/IPv6 address ranges, parsed once from flags (--trusted-proxies,
// --allow-endpoint-cidrs), then asked on the data path and in the endpoint safety check. Asking
// allocates nothing: the hot path holds a set by const reference.
//
// IPv4 and IPv6 ranges are kept apart: "::/0" covers every IPv6 address but no IPv4 one. An
// IPv4-mapped IPv6 address (::ffff:a.b.c.d, how a dual-stack socket reports an IPv4 peer) is
// looked up as the IPv4 address it carries, and a range written in that form
// ("::ffff:10.0.0.0/104") is stored as the IPv4 range it denotes ("10.0.0.0/8").
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "common/result.hpp"

namespace sluice::net {

// One range: the address with its host bits zero, and the prefix length.
struct Cidr {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 in the first 4 bytes
  unsigned prefix = 0;                   // 0-32 for IPv4, 0-128 for IPv6

  // Whether `address` (16 bytes, or the first 4 for IPv4) of the same family is inside.
  bool contains(const std::uint8_t* address) const noexcept;
  // "10.0.0.0/8", "fd00::/8".
  std::string text() const;
  bool operator==(const Cidr&) const = default;
};

// "10.0.0.0/8", "fd00::/8", or a single address ("192.0.2.1" is 192.0.2.1/32). Refused, with
// the entry in the message: anything but an IP literal (no names, zone ids, brackets, leading
// zeros), a prefix out of range or with a sign or leading zeros, and host bits set
// ("10.0.0.1/8": the intent is unclear, write 10.0.0.0/8 or 10.0.0.1/32).
Result<Cidr> parseCidr(std::string_view text);

class CidrSet {
public:
  CidrSet() = default;
  explicit CidrSet(std::vector<Cidr> ranges);

  bool empty() const noexcept { return ranges_.empty(); }
  const std::vector<Cidr>& ranges() const noexcept { return ranges_; }

  // Whether some range covers `address` (IPv4-mapped IPv6 as IPv4). No allocation.
  bool contains(const boost::asio::ip::address& address) const noexcept;
  // The same for an address literal ("192.0.2.1", "2001:db8::1", no brackets or port); false
  // for anything else. No allocation.
  bool containsText(std::string_view address) const noexcept;
  // containsText for http::AddressPredicate: `set` is a const CidrSet*.
  static bool matchText(const void* set, std::string_view address) noexcept;

  // The ranges as "a/n,b/m", in the order given: parseCidrs(text()) gives an equal set.
  std::string text() const;
  bool operator==(const CidrSet&) const = default;

private:
  bool containsBytes(bool v6, const std::uint8_t* address) const noexcept;

  std::vector<Cidr> ranges_;
};

// A comma-separated list of parseCidr entries, spaces around entries allowed; "" is the empty
// set. An empty entry ("a,,b", a trailing comma) or a bad one fails with a message naming it:
// `entry 2: bad CIDR "10.0.0.300/8": not an IP address`.
Result<CidrSet> parseCidrs(std::string_view comma_separated);

}  // namespace sluice::net
