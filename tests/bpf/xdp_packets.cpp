#include "xdp_packets.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace sluice::testing {
namespace {

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v));
}

void set16(std::vector<std::uint8_t>& out, std::size_t at, std::uint16_t v) {
  out[at] = static_cast<std::uint8_t>(v >> 8);
  out[at + 1] = static_cast<std::uint8_t>(v);
}

std::uint32_t sumWords(const std::uint8_t* data, std::size_t len, std::uint32_t sum) {
  for (std::size_t i = 0; i + 1 < len; i += 2) {
    sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  }
  if (len % 2 != 0) {
    sum += static_cast<std::uint32_t>(data[len - 1] << 8);
  }
  return sum;
}

std::vector<std::uint8_t> l4(const Frame& f) {
  std::vector<std::uint8_t> t;
  put16(t, f.sport);
  put16(t, f.dport);
  if (f.proto == 17) {
    put16(t, 8);
    put16(t, 0);
    return t;
  }
  put32(t, f.seq);
  put32(t, f.ack);
  const std::uint8_t words = f.mss_option ? 6 : 5;
  t.push_back(static_cast<std::uint8_t>(words << 4));
  t.push_back(f.flags);
  put16(t, 64240);
  put16(t, 0);  // checksum
  put16(t, 0);  // urgent
  if (f.mss_option) {
    t.insert(t.end(), {2, 4, 0x05, 0xb4});
  }
  return t;
}

}  // namespace

std::uint16_t inetChecksum(const std::uint8_t* data, std::size_t len, std::uint32_t sum) {
  sum = sumWords(data, len, sum);
  while ((sum >> 16) != 0) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<std::uint16_t>(~sum);
}

std::vector<std::uint8_t> buildFrame(const Frame& f) {
  const bool v6 = f.src.find(':') != std::string::npos;
  std::uint8_t src[16] = {};
  std::uint8_t dst[16] = {};
  ::inet_pton(v6 ? AF_INET6 : AF_INET, f.src.c_str(), src);
  ::inet_pton(v6 ? AF_INET6 : AF_INET, f.dst.c_str(), dst);
  std::vector<std::uint8_t> out = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  for (int i = 0; i < f.vlans; ++i) {
    put16(out, 0x8100);
    put16(out, static_cast<std::uint16_t>(100 + i));
  }
  put16(out, f.ethertype != 0 ? f.ethertype : (v6 ? 0x86DD : 0x0800));
  if (f.ethertype != 0 && f.ethertype != 0x0800 && f.ethertype != 0x86DD) {
    out.resize(out.size() + 28);
    return out;
  }
  std::vector<std::uint8_t> seg = l4(f);
  const std::size_t l3 = out.size();
  std::uint32_t pseudo = 0;
  if (!v6) {
    const std::size_t ihl = 20 + 4 * static_cast<std::size_t>(f.ip_option_words);
    out.push_back(static_cast<std::uint8_t>(0x40 | (ihl / 4)));
    out.push_back(0);
    put16(out, static_cast<std::uint16_t>(ihl + seg.size()));
    put16(out, 1);
    put16(out, f.fragment ? 0x2000 : 0x4000);
    out.push_back(64);
    out.push_back(f.proto);
    put16(out, 0);
    out.insert(out.end(), src, src + 4);
    out.insert(out.end(), dst, dst + 4);
    out.insert(out.end(), 4 * static_cast<std::size_t>(f.ip_option_words), 1);  // NOPs
    set16(out, l3 + 10, inetChecksum(out.data() + l3, ihl));
    pseudo = sumWords(src, 4, sumWords(dst, 4, f.proto + static_cast<std::uint32_t>(seg.size())));
  } else {
    std::vector<std::uint8_t> ext;
    std::uint8_t first = f.proto;
    if (f.fragment) {
      ext = {f.proto, 0, 0, 0, 0, 0, 0, 1};  // offset 0, M=1
      first = 44;
    }
    for (int i = 0; i < f.v6_ext; ++i) {
      std::vector<std::uint8_t> h = {first, 0, 1, 4, 0, 0, 0, 0};  // PadN
      h.insert(h.end(), ext.begin(), ext.end());
      ext = h;
      first = 60;
    }
    put32(out, 0x60000000);
    put16(out, static_cast<std::uint16_t>(ext.size() + seg.size()));
    out.push_back(first);
    out.push_back(64);
    out.insert(out.end(), src, src + 16);
    out.insert(out.end(), dst, dst + 16);
    out.insert(out.end(), ext.begin(), ext.end());
    pseudo = sumWords(src, 16, sumWords(dst, 16, f.proto + static_cast<std::uint32_t>(seg.size())));
  }
  const std::size_t csum_at = f.proto == 17 ? 6 : 16;
  const std::uint16_t c = inetChecksum(seg.data(), seg.size(), pseudo);
  seg[csum_at] = static_cast<std::uint8_t>(c >> 8);
  seg[csum_at + 1] = static_cast<std::uint8_t>(c);
  out.insert(out.end(), seg.begin(), seg.end());
  return out;
}

}  // namespace sluice::testing
