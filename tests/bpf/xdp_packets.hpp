// Hand-built frames for the front door's tests: Ethernet, VLAN tags, IPv4 (with options and
// fragments) or IPv6 (with extension headers), TCP or UDP, with valid checksums.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::testing {

inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kRst = 0x04;

struct Frame {
  std::string src = "10.0.0.1";  // IPv6 when it contains ':'
  std::string dst = "192.0.2.10";
  std::uint16_t sport = 40000;
  std::uint16_t dport = 80;
  std::uint8_t flags = kSyn;
  std::uint32_t seq = 1000;
  std::uint32_t ack = 0;
  std::uint8_t proto = 6;       // 6 TCP, 17 UDP
  int vlans = 0;                // 802.1Q tags
  int ip_option_words = 0;      // IPv4 options, 4 bytes each (NOPs)
  bool fragment = false;        // IPv4 MF / IPv6 fragment header
  int v6_ext = 0;               // IPv6 destination-options headers before TCP
  bool mss_option = true;       // TCP MSS option (1460)
  std::uint16_t ethertype = 0;  // override (e.g. 0x0806 ARP)
};

// The frame's bytes.
std::vector<std::uint8_t> buildFrame(const Frame& f);

// Internet checksum of `len` bytes, folded (0 means valid when computed over a checksummed
// header).
std::uint16_t inetChecksum(const std::uint8_t* data, std::size_t len, std::uint32_t sum = 0);

}  // namespace sluice::testing
