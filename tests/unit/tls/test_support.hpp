// Helpers shared by the sluice_tls_hello tests: a builder of ClientHello messages and TLS
// records, and drivers that feed a ClientHelloReader the way a socket would, so every test can
// assert "in any segmentation == all at once".
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tls/client_hello.hpp"

namespace sluice::tls::testing {

using Bytes = std::vector<std::uint8_t>;

inline constexpr std::uint16_t kSni = 0;
inline constexpr std::uint16_t kGroups = 10;
inline constexpr std::uint16_t kAlpn = 16;
inline constexpr std::uint16_t kVersions = 43;
inline constexpr std::uint16_t kKeyShare = 51;
inline constexpr std::uint16_t kEch = 0xfe0d;

inline void put16(Bytes& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

inline void append(Bytes& out, const Bytes& more) {
  out.insert(out.end(), more.begin(), more.end());
}

inline Bytes bytesOf(std::string_view s) {
  return {s.begin(), s.end()};
}

inline Bytes vec8(const Bytes& b) {
  Bytes out{static_cast<std::uint8_t>(b.size())};
  append(out, b);
  return out;
}

inline Bytes vec16(const Bytes& b) {
  Bytes out;
  put16(out, b.size());
  append(out, b);
  return out;
}

inline Bytes u16s(std::initializer_list<std::uint16_t> values) {
  Bytes out;
  for (const std::uint16_t v : values) {
    put16(out, v);
  }
  return out;
}

inline Bytes ext(std::uint16_t type, const Bytes& data = {}) {
  Bytes out;
  put16(out, type);
  append(out, vec16(data));
  return out;
}

// server_name with one host_name entry.
inline Bytes sniExt(std::string_view host) {
  Bytes entry{0};
  append(entry, vec16(bytesOf(host)));
  return ext(kSni, vec16(entry));
}

inline Bytes alpnExt(std::initializer_list<std::string_view> names) {
  Bytes list;
  for (const std::string_view n : names) {
    append(list, vec8(bytesOf(n)));
  }
  return ext(kAlpn, vec16(list));
}

inline Bytes versionsExt(std::initializer_list<std::uint16_t> versions) {
  return ext(kVersions, vec8(u16s(versions)));
}

inline Bytes groupsExt(std::initializer_list<std::uint16_t> groups) {
  return ext(kGroups, vec16(u16s(groups)));
}

// key_share with one entry of `size` bytes per group.
inline Bytes keyShareExt(std::initializer_list<std::pair<std::uint16_t, std::size_t>> shares) {
  Bytes list;
  for (const auto& [group, size] : shares) {
    put16(list, group);
    append(list, vec16(Bytes(size, 0x42)));
  }
  return ext(kKeyShare, vec16(list));
}

// The fields of a ClientHello body; the defaults make a plausible TLS 1.3 hello without SNI.
struct HelloSpec {
  std::uint8_t handshake_type = 1;
  std::uint16_t legacy_version = 0x0303;
  Bytes session_id = Bytes(32, 0x5a);
  Bytes suites = u16s({0x1301, 0x1302, 0xc02f});
  Bytes compression{0};
  bool has_extensions = true;
  std::vector<Bytes> extensions{versionsExt({0x0304, 0x0303}), groupsExt({0x001d}),
                                keyShareExt({{0x001d, 32}})};
  Bytes trailer;  // bytes after the extensions block, inside the message
};

inline Bytes body(const HelloSpec& spec) {
  Bytes out;
  put16(out, spec.legacy_version);
  append(out, Bytes(32, 0x11));
  append(out, vec8(spec.session_id));
  append(out, vec16(spec.suites));
  append(out, vec8(spec.compression));
  if (spec.has_extensions) {
    Bytes block;
    for (const Bytes& e : spec.extensions) {
      append(block, e);
    }
    append(out, vec16(block));
  }
  append(out, spec.trailer);
  return out;
}

// A handshake message: type, 24-bit length, body.
inline Bytes handshake(const Bytes& body, std::uint8_t type = 1) {
  Bytes out{type, static_cast<std::uint8_t>(body.size() >> 16),
            static_cast<std::uint8_t>(body.size() >> 8), static_cast<std::uint8_t>(body.size())};
  append(out, body);
  return out;
}

inline Bytes message(const HelloSpec& spec) {
  return handshake(body(spec), spec.handshake_type);
}

inline Bytes recordHeader(std::size_t length, std::uint8_t type = 22, std::uint16_t ver = 0x0301) {
  Bytes out{type};
  put16(out, ver);
  put16(out, length);
  return out;
}

// `payload` in records of the given sizes, the rest in one last record.
inline Bytes records(const Bytes& payload, const std::vector<std::size_t>& sizes = {}) {
  Bytes out;
  std::size_t at = 0;
  for (std::size_t i = 0; i <= sizes.size() && at < payload.size(); ++i) {
    const std::size_t n =
        std::min(i < sizes.size() ? sizes[i] : payload.size(), payload.size() - at);
    append(out, recordHeader(n));
    out.insert(out.end(), payload.begin() + static_cast<std::ptrdiff_t>(at),
               payload.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  }
  return out;
}

inline Bytes records(const HelloSpec& spec) {
  return records(message(spec));
}

struct Outcome {
  Status status = Status::kNeedMore;
  Error error = Error::kNone;
  std::size_t used = 0;  // over every feed
  ClientHelloReader reader;
};

// Feeds `in` in chunks of `chunk` bytes until the reader decides.
inline Outcome feedChunks(const Bytes& in, std::size_t chunk,
                          std::size_t max_hello = kDefaultMaxHello) {
  Outcome out{.reader = ClientHelloReader(max_hello)};
  for (std::size_t at = 0; at < in.size() && out.status == Status::kNeedMore; at += chunk) {
    const std::size_t n = std::min(chunk, in.size() - at);
    const FeedResult r = out.reader.feed(std::span<const std::uint8_t>(in).subspan(at, n));
    out.status = r.status;
    out.used += r.used;
  }
  out.error = out.reader.error();
  return out;
}

inline constexpr std::size_t kWhole = static_cast<std::size_t>(-1);

inline std::string sniOf(const Outcome& o) {
  return std::string(o.reader.hello().sni);
}

// Reads `in` whole, and checks that one byte at a time and a few chunk sizes agree with it.
inline Outcome read(const Bytes& in, std::size_t max_hello = kDefaultMaxHello) {
  Outcome whole = feedChunks(in, kWhole, max_hello);
  for (const std::size_t chunk : {1, 2, 3, 7, 64}) {
    const Outcome part = feedChunks(in, chunk, max_hello);
    EXPECT_EQ(part.status, whole.status) << "chunk " << chunk;
    EXPECT_EQ(part.error, whole.error) << "chunk " << chunk;
    EXPECT_EQ(part.used, whole.used) << "chunk " << chunk;
    if (whole.status == Status::kDone) {
      EXPECT_EQ(sniOf(part), sniOf(whole)) << "chunk " << chunk;
      EXPECT_EQ(part.reader.hello().alpn_count, whole.reader.hello().alpn_count);
    }
  }
  if (whole.status == Status::kDone) {
    // The passthrough path replays exactly these bytes.
    const std::span<const std::uint8_t> consumed = whole.reader.consumed();
    EXPECT_EQ(consumed.size(), whole.used);
    EXPECT_TRUE(std::equal(consumed.begin(), consumed.end(), in.begin()));
  }
  return whole;
}

inline Outcome readOk(const Bytes& in, std::size_t max_hello = kDefaultMaxHello) {
  Outcome o = read(in, max_hello);
  EXPECT_EQ(o.status, Status::kDone) << name(o.error);
  return o;
}

inline Error readError(const Bytes& in, std::size_t max_hello = kDefaultMaxHello) {
  const Outcome o = read(in, max_hello);
  EXPECT_EQ(o.status, Status::kError);
  return o.error;
}

}  // namespace sluice::tls::testing
