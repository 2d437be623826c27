// Byte classes and scanners shared by the head parser, the chunked decoder and the normalizers.
// Private to sluice_http: nothing outside userspace/http includes this.
//
// The scanners are the hot path. Each class is one bit in a 256-entry table so a byte costs one
// load; the long runs (request-target, field values) are checked 16 bytes at a time with SSE2
// where available, else 8 at a time with word-sized bit tricks, jumping straight to the first
// byte that ends the run. SLUICE_HTTP_PORTABLE_SCAN forces the word path (tests build it too).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__) && !defined(SLUICE_HTTP_PORTABLE_SCAN)
#include <emmintrin.h>
#endif

namespace sluice::http::detail {

enum CharClass : std::uint8_t {
  kTchar = 1U << 0,       // RFC 9110 token character
  kTargetByte = 1U << 1,  // VCHAR except '#': what a request-target may contain
  kFieldByte = 1U << 2,   // VCHAR, SP, HTAB, obs-text: what a field value may contain
  kHexDigit = 1U << 3,
  kRegName = 1U << 4,     // unreserved / sub-delims (reg-name without pct-encoded)
  kUnreserved = 1U << 5,  // RFC 3986 unreserved
  kDigit = 1U << 6,
  kQdText = 1U << 7,  // RFC 9110 qdtext
};

constexpr std::array<std::uint8_t, 256> makeClassTable() {
  std::array<std::uint8_t, 256> t{};
  constexpr std::string_view kTcharPunct = "!#$%&'*+-.^_`|~";
  constexpr std::string_view kSubDelims = "!$&'()*+,;=";
  for (int c = 0; c < 256; ++c) {
    std::uint8_t f = 0;
    const bool digit = c >= '0' && c <= '9';
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool vchar = c >= 0x21 && c <= 0x7e;
    if (digit || alpha || kTcharPunct.find(static_cast<char>(c)) != std::string_view::npos) {
      f |= kTchar;
    }
    if (vchar && c != '#') {
      f |= kTargetByte;
    }
    if (vchar || c == ' ' || c == '\t' || c >= 0x80) {
      f |= kFieldByte;
    }
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
      f |= kHexDigit;
    }
    const bool unreserved = digit || alpha || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      f |= kUnreserved;
    }
    if (unreserved || kSubDelims.find(static_cast<char>(c)) != std::string_view::npos) {
      f |= kRegName;
    }
    if (digit) {
      f |= kDigit;
    }
    const bool qdtext_ascii = c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
    if (c == '\t' || c == ' ' || qdtext_ascii || c >= 0x80) {
      f |= kQdText;
    }
    t[static_cast<std::size_t>(c)] = f;
  }
  return t;
}

inline constexpr std::array<std::uint8_t, 256> kClass = makeClassTable();

constexpr std::array<char, 256> makeLowerTable() {
  std::array<char, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[static_cast<std::size_t>(c)] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  return t;
}

inline constexpr std::array<char, 256> kLower = makeLowerTable();

inline bool is(char c, CharClass cls) {
  return (kClass[static_cast<unsigned char>(c)] & cls) != 0;
}
inline char toLower(char c) {
  return kLower[static_cast<unsigned char>(c)];
}
inline bool isWs(char c) {
  return c == ' ' || c == '\t';
}
inline int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  const char l = toLower(c);
  if (l >= 'a' && l <= 'f') {
    return l - 'a' + 10;
  }
  return -1;
}

// Word-at-a-time tests. Each flags exactly the matching bytes at and below the lowest match
// (borrows only produce false flags above a true one), so the lowest flag is the first match.
inline constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
inline constexpr std::uint64_t kHighs = 0x8080808080808080ULL;

// Loads 8 bytes so that the first byte in memory is the least significant.
inline std::uint64_t load64(const char* p) {
  std::uint64_t x;
  std::memcpy(&x, p, sizeof x);
  if constexpr (std::endian::native == std::endian::big)
    x = __builtin_bswap64(x);
  return x;
}
inline std::uint64_t anyZero(std::uint64_t x) {
  return (x - kOnes) & ~x & kHighs;
}
inline std::uint64_t anyEqual(std::uint64_t x, unsigned char c) {
  return anyZero(x ^ (kOnes * c));
}
// Some byte < n (n <= 128); bytes >= 0x80 never match.
inline std::uint64_t anyLess(std::uint64_t x, unsigned char n) {
  return (x - kOnes * n) & ~x & kHighs;
}
inline const char* firstFlagged(const char* p, std::uint64_t flags) {
  return p + std::countr_zero(flags) / 8;
}

// First byte in [p, end) that a request-target may not contain: CTL, SP, DEL, >= 0x80, '#'.
inline const char* scanTarget(const char* p, const char* end) {
#if defined(__SSE2__) && !defined(SLUICE_HTTP_PORTABLE_SCAN)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i del = _mm_set1_epi8(0x7f);
  const __m128i hash = _mm_set1_epi8('#');
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(x, space), x);  // x <= 0x20
    const __m128i high = _mm_cmpeq_epi8(_mm_max_epu8(x, del), x);   // x >= 0x7f
    const __m128i bad = _mm_or_si128(_mm_or_si128(low, high), _mm_cmpeq_epi8(x, hash));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(bad));
    if (mask != 0) {
      return p + std::countr_zero(mask);
    }
    p += 16;
  }
#endif
  while (end - p >= 8) {
    const std::uint64_t x = load64(p);
    const std::uint64_t bad =
        anyLess(x, 0x21) | (x & kHighs) | anyEqual(x, 0x7f) | anyEqual(x, '#');
    if (bad != 0) {
      return firstFlagged(p, bad);
    }
    p += 8;
  }
  while (p < end && is(*p, kTargetByte)) {
    ++p;
  }
  return p;
}

// First CTL or DEL byte in [p, end), HTAB included.
inline const char* findCtlOrDel(const char* p, const char* end) {
#if defined(__SSE2__) && !defined(SLUICE_HTTP_PORTABLE_SCAN)
  const __m128i max_ctl = _mm_set1_epi8(0x1f);
  const __m128i del = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, max_ctl), x);  // x <= 0x1f
    const __m128i bad = _mm_or_si128(ctl, _mm_cmpeq_epi8(x, del));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(bad));
    if (mask != 0) {
      return p + std::countr_zero(mask);
    }
    p += 16;
  }
#endif
  while (end - p >= 8) {
    const std::uint64_t x = load64(p);
    const std::uint64_t bad = anyLess(x, 0x20) | anyEqual(x, 0x7f);
    if (bad != 0) {
      return firstFlagged(p, bad);
    }
    p += 8;
  }
  while (p < end && static_cast<unsigned char>(*p) >= 0x20 && *p != 0x7f) {
    ++p;
  }
  return p;
}

// First byte in [p, end) that a field value may not contain (or end). HTAB is legal but rare,
// so it is stepped over after the fast scan stops on it.
inline const char* scanFieldValue(const char* p, const char* end) {
  for (;;) {
    p = findCtlOrDel(p, end);
    if (p == end || *p != '\t') {
      return p;
    }
    ++p;
  }
}

// Field names are short and their alphabet irregular: a table walk, unrolled so the bounds check
// is paid once per four bytes.
inline const char* scanToken(const char* p, const char* end) {
  while (end - p >= 4) {
    if (!is(p[0], kTchar)) {
      return p;
    }
    if (!is(p[1], kTchar)) {
      return p + 1;
    }
    if (!is(p[2], kTchar)) {
      return p + 2;
    }
    if (!is(p[3], kTchar)) {
      return p + 3;
    }
    p += 4;
  }
  while (p < end && is(*p, kTchar)) {
    ++p;
  }
  return p;
}

inline std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isWs(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isWs(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// Calls fn(element) for each OWS-trimmed element of a comma-separated list, empty ones included.
template <typename Fn>
void forEachListElement(std::string_view list, Fn&& fn) {
  for (;;) {
    const std::size_t comma = list.find(',');
    fn(trimOws(list.substr(0, comma)));
    if (comma == std::string_view::npos) {
      return;
    }
    list.remove_prefix(comma + 1);
  }
}

// "host[:port]" from a Host header or a request-target authority. host keeps IPv6 brackets;
// port is empty when absent. Rejects userinfo, zone ids, IPvFuture and empty ports.
struct Authority {
  std::string_view host;
  std::string_view port;
};
bool parseAuthority(std::string_view text, Authority& out);

// RFC 3986 IPv4address (dec-octets without leading zeros) and IPv6address (no brackets, no zone).
bool validIpv4(std::string_view s);
bool validIpv6(std::string_view s);

}  // namespace sluice::http::detail
