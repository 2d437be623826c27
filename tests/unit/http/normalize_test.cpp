#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "http/parser.hpp"

namespace sluice::http {
namespace {

std::optional<std::string> path(std::string_view in) {
  // Exactly in.size() bytes of room, as documented: ASan catches any overrun.
  std::vector<char> out(in.size() == 0 ? 1 : in.size());
  std::size_t len = 12345;
  if (!normalizePath(in, out.data(), len)) {
    EXPECT_EQ(len, 0U);
    return std::nullopt;
  }
  EXPECT_LE(len, in.size());
  return std::string(out.data(), len);
}

std::optional<std::string> host(std::string_view in) {
  std::vector<char> out(in.size() == 0 ? 1 : in.size());
  std::size_t len = 12345;
  if (!normalizeHost(in, out.data(), len)) {
    return std::nullopt;
  }
  EXPECT_LE(len, in.size());
  return std::string(out.data(), len);
}

struct PathCase {
  const char* in;
  const char* out;  // nullptr: rejected
};

TEST(NormalizePathTest, Table) {
  const PathCase cases[] = {
      {"/", "/"},
      {"/a/b/c", "/a/b/c"},
      {"*", "*"},
      // dot segments (RFC 3986 §5.2.4 examples adapted to absolute paths)
      {"/a/b/c/./../../g", "/a/g"},
      {"/mid/content=5/../6", "/mid/6"},
      {"/./a", "/a"},
      {"/a/.", "/a/"},
      {"/a/./", "/a/"},
      {"/a/..", "/"},
      {"/a/../", "/"},
      {"/a/b/..", "/a/"},
      {"/a/b/../", "/a/"},
      {"/.", "/"},
      {"/a/./b/../c", "/a/c"},
      {"/a/.../b", "/a/.../b"},
      {"/a/..b/c", "/a/..b/c"},
      {"/a/.b", "/a/.b"},
      {"/a./b", "/a./b"},
      // runs of slashes are merged before anything else
      {"//a//b", "/a/b"},
      {"//admin", "/admin"},
      {"///", "/"},
      {"/a//", "/a/"},
      {"/a//../b", "/b"},
      {"/a//..", "/"},
      {"/a/.//b", "/a/b"},
      {"//..//a", nullptr},
      // a segment that is "." or ".." without its ";" parameters is a dot-segment
      {"/public/..;/manager", "/manager"},
      {"/public/..;x=1/manager", "/manager"},
      {"/a/.;x/b", "/a/b"},
      {"/a/b/..;", "/a/"},
      {"/a/%2e%2e;jsessionid=1/b", "/b"},
      {"/..;/a", nullptr},
      {"/a;x/b", "/a;x/b"},
      {"/a/..x;/b", "/a/..x;/b"},
      {"/a/...;/b", "/a/...;/b"},
      {"/a/;/b", "/a/;/b"},
      {"/a/..%3B/b", "/a/..%3B/b"},
      // escapes: unreserved decoded, the rest upper-cased
      {"/%41%42c", "/ABc"},
      {"/%7e%2D%2e%5F", "/~-._"},

      {"/%20x%3a", "/%20x%3A"},
      {"/%00", "/%00"},
      {"/%c3%a9", "/%C3%A9"},
      {"/%25", "/%25"},
      {"/%2541", "/%2541"},  // no double decoding
      // dot segments produced by decoding
      {"/a/%2e%2e/b", "/b"},
      {"/a/%2E/b", "/a/b"},
      {"/a/.%2e", "/"},
      {"/a/%2e./b/", "/b/"},
      // other visible bytes the parser accepts pass through
      {"/a;b=c,d!$&'()*+:@", "/a;b=c,d!$&'()*+:@"},
      // escaped slashes and backslashes are refused by default
      {"/a%2fb", nullptr},
      {"/a%2Fb", nullptr},
      {"/a%5cb", nullptr},
      {"/a\\b", nullptr},
      {"/%2F", nullptr},
      // rejected
      {"/..", nullptr},
      {"/../a", nullptr},
      {"/a/../..", nullptr},
      {"/a/b/../../../c", nullptr},
      {"/%2e%2e", nullptr},
      {"/a/%2E%2E/%2e%2e/b", nullptr},
      {"", nullptr},
      {"a/b", nullptr},
      {"**", nullptr},
      {"http://h/", nullptr},
      {"/a?b", nullptr},
      {"/a#b", nullptr},
      {"/a b", nullptr},
      {"/a\x7f", nullptr},
      {"/a\x80", nullptr},
      {"/%", nullptr},
      {"/%4", nullptr},
      {"/%G1", nullptr},
      {"/%1G", nullptr},
      {"/a%", nullptr},
      {"/%%41", nullptr},
  };
  for (const PathCase& c : cases) {
    SCOPED_TRACE(c.in);
    const std::optional<std::string> got = path(c.in);
    if (c.out == nullptr) {
      EXPECT_FALSE(got.has_value()) << *got;
    } else {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, c.out);
      // Normalizing is idempotent.
      EXPECT_EQ(path(*got), got);
    }
  }
}

// The reason a path is refused, and the keep switch.
PathError reason(std::string_view in, EscapedSlashes slashes = EscapedSlashes::kReject) {
  std::vector<char> out(in.size() == 0 ? 1 : in.size());
  std::size_t len = 12345;
  const PathError e = normalizePath(in, PathOptions{.escaped_slashes = slashes}, out.data(), len);
  if (e != PathError::kNone) {
    EXPECT_EQ(len, 0U) << in;
  }
  return e;
}

std::optional<std::string> kept(std::string_view in) {
  std::vector<char> out(in.size() == 0 ? 1 : in.size());
  std::size_t len = 0;
  if (normalizePath(in, PathOptions{.escaped_slashes = EscapedSlashes::kKeep}, out.data(), len) !=
      PathError::kNone) {
    return std::nullopt;
  }
  return std::string(out.data(), len);
}

TEST(NormalizePathTest, RefusalsNameTheirReason) {
  EXPECT_EQ(reason("/a/b"), PathError::kNone);
  EXPECT_EQ(reason(""), PathError::kNotOriginForm);
  EXPECT_EQ(reason("a/b"), PathError::kNotOriginForm);
  EXPECT_EQ(reason("/a b"), PathError::kBadByte);
  EXPECT_EQ(reason("/a?b"), PathError::kBadByte);
  EXPECT_EQ(reason("/a#b"), PathError::kBadByte);
  EXPECT_EQ(reason("/a\x80"), PathError::kBadByte);
  EXPECT_EQ(reason("/%G0"), PathError::kBadEscape);
  EXPECT_EQ(reason("/a%2"), PathError::kBadEscape);
  EXPECT_EQ(reason("/a%2f"), PathError::kEscapedSlash);
  EXPECT_EQ(reason("/a%5C"), PathError::kEscapedSlash);
  EXPECT_EQ(reason("/a\\b"), PathError::kBackslash);
  EXPECT_EQ(reason("/.."), PathError::kAboveRoot);
  EXPECT_EQ(reason("/a/../..;x"), PathError::kAboveRoot);
  EXPECT_EQ(reason("/a%2fb", EscapedSlashes::kKeep), PathError::kNone);
  EXPECT_EQ(reason("/a\\b", EscapedSlashes::kKeep), PathError::kNone);
}

TEST(NormalizePathTest, ErrorNames) {
  const std::pair<PathError, std::string_view> all[] = {
      {PathError::kNone, "none"},
      {PathError::kNotOriginForm, "not_origin_form"},
      {PathError::kBadByte, "bad_byte"},
      {PathError::kBadEscape, "bad_escape"},
      {PathError::kEscapedSlash, "escaped_slash"},
      {PathError::kBackslash, "backslash"},
      {PathError::kAboveRoot, "above_root"},
  };
  ASSERT_EQ(std::size(all), kPathErrorCount);
  for (const auto& [e, name] : all) {
    EXPECT_EQ(pathErrorName(e), name);
  }
  EXPECT_EQ(pathErrorName(static_cast<PathError>(200)), "unknown");
}

TEST(NormalizePathTest, KeptEscapedSlashesAreOpaque) {
  const PathCase cases[] = {
      {"/a%2fb", "/a%2Fb"},         {"/a%2Fb/%5c", "/a%2Fb/%5C"}, {"/a\\b", "/a\\b"},
      {"/a%2f..", "/a%2F.."},  // not a dot-segment: the escape is not a separator
      {"/a/..%2f/b", "/a/..%2F/b"}, {"/a\\../b", "/a\\../b"},     {"/x/%2f/../y", "/x/y"},
      {"//a%2F//b", "/a%2F/b"},     {"/a/%2E%2E", "/"},
  };
  for (const PathCase& c : cases) {
    SCOPED_TRACE(c.in);
    const std::optional<std::string> got = kept(c.in);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, c.out);
    EXPECT_EQ(kept(*got), got) << "idempotent";
  }
}

TEST(NormalizePathTest, NulByteRejected) {
  EXPECT_FALSE(path(std::string("/a\0b", 4)).has_value());
}

TEST(NormalizePathTest, OutputFitsInInputSize) {
  // Worst case: nothing shrinks.
  const std::string in = "/%C3%A9/%20/x";
  EXPECT_EQ(path(in), in);
}

struct HostCase {
  const char* in;
  const char* out;
};

TEST(NormalizeHostTest, Table) {
  const HostCase cases[] = {
      {"example.com", "example.com"},
      {"Example.COM", "example.com"},
      {"example.com:8080", "example.com"},
      {"EXAMPLE.com.:443", "example.com"},
      {"example.com.", "example.com"},
      {"127.0.0.1:80", "127.0.0.1"},
      {"[::1]", "[::1]"},
      {"[::1]:443", "[::1]"},
      {"[2001:DB8::A]:8443", "[2001:db8::a]"},
      {"[::FFFF:192.0.2.1]", "[::ffff:192.0.2.1]"},
      {"[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:7:8]"},
      {"[1:2:3:4:5:6:7::]", "[1:2:3:4:5:6:7::]"},
      {"[::]", "[::]"},
      {"xn--BCHER-kva.example", "xn--bcher-kva.example"},
      {"h:65535", "h"},
      {"a-b.c-d", "a-b.c-d"},
      {"1.2.3.4.", "1.2.3.4"},
      {"9a.example", "9a.example"},
      {"example.123a", "example.123a"},
      {"0xg.example", "0xg.example"},
      // refused: anything but LDH labels, IP literals and a port
      {"%41.example", nullptr},
      {"a_b.example", nullptr},
      {"a,b.example", nullptr},
      {"a!b", nullptr},
      {"a$b", nullptr},
      {"a&b", nullptr},
      {"a'b", nullptr},
      {"a(b)", nullptr},
      {"a*b", nullptr},
      {"a+b", nullptr},
      {"a;b", nullptr},
      {"a=b", nullptr},
      {"a~b", nullptr},
      {"*.example.com", nullptr},
      {".example.com", nullptr},
      {"example..com", nullptr},
      {"example.com..", nullptr},
      // a name that ends in a number is an IPv4 address in another spelling
      {"1.2.3", nullptr},
      {"127.1", nullptr},
      {"2130706433", nullptr},
      {"01.2.3.4", nullptr},
      {"1.2.3.256", nullptr},
      {"example.0x7f", nullptr},
      {"0x7f.0.0.1", nullptr},
      {"example.0X", nullptr},
      {"", nullptr},
      {".", nullptr},
      {"a..", nullptr},
      {":80", nullptr},
      {"a b", nullptr},
      {"host:", nullptr},
      {"host:99999", nullptr},
      {"host:65536", nullptr},
      {"host:000080", nullptr},
      {"host:-1", nullptr},
      {"a@b", nullptr},
      {"a/b", nullptr},
      {"[::1", nullptr},
      {"[::1]:", nullptr},
      {"[::1]]", nullptr},
      {"[]", nullptr},
      {"[:::]", nullptr},
      {"[1::2::3]", nullptr},
      {"[12345::]", nullptr},
      {"[1:2:3:4:5:6:7:8:9]", nullptr},
      {"[1:2:3:4:5:6:7]", nullptr},
      {"[1:2:3:4:5:6:7:8::]", nullptr},
      {"[::1.2.3]", nullptr},
      {"[::1.2.3.256]", nullptr},
      {"[::1.2.3.04]", nullptr},
      {"[1.2.3.4]", nullptr},
      {"[::1:]", nullptr},
      {"[:1::]", nullptr},
      {"[g::]", nullptr},
      {"[fe80::1%25eth0]", nullptr},
      {"[v1.fe]", nullptr},
      {"\xc3\xa9.example", nullptr},
  };
  for (const HostCase& c : cases) {
    SCOPED_TRACE(c.in);
    const std::optional<std::string> got = host(c.in);
    if (c.out == nullptr) {
      EXPECT_FALSE(got.has_value()) << *got;
    } else {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, c.out);
      EXPECT_EQ(host(*got), got);
    }
  }
}

TEST(NormalizeHostTest, LabelAndNameLengths) {
  const std::string label63(63, 'a');
  const std::string label64(64, 'a');
  EXPECT_EQ(host(label63 + ".example"), label63 + ".example");
  EXPECT_EQ(host(label64 + ".example"), std::nullopt);
  // 253 bytes in all (without the root dot) is the longest DNS name.
  std::string name;
  while (name.size() < 253 - 64) {
    name += label63 + ".";
  }
  name += std::string(253 - name.size(), 'b');
  ASSERT_EQ(name.size(), 253U);
  EXPECT_EQ(host(name), name);
  EXPECT_EQ(host(name + "."), name);
  EXPECT_EQ(host(name + ":80"), name);
  EXPECT_EQ(host("c" + name), std::nullopt);
}

TEST(HopByHopTest, FixedSet) {
  for (const char* name : {"Connection", "keep-alive", "PROXY-CONNECTION", "te", "Trailer",
                           "Transfer-Encoding", "upgrade"}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(isHopByHop(name, ""));
  }
  // Same lengths as the fixed names, different spelling.
  for (const char* name : {"Host", "Content-Length", "Trailers", "TE2", "X-Connection", "",
                           "Proxy-Authorization", "Upgrade-Insecure-Requests", "tx", "Trailed",
                           "Connected!", "Proxy-Connectio!", "Transfer-Encodin!"}) {
    SCOPED_TRACE(name);
    EXPECT_FALSE(isHopByHop(name, ""));
  }
}

TEST(HopByHopTest, ListedInConnection) {
  EXPECT_TRUE(isHopByHop("X-Secret", "close, x-secret"));
  EXPECT_TRUE(isHopByHop("x-secret", "X-SECRET"));
  EXPECT_TRUE(isHopByHop("X-A", " \tX-A\t ,foo"));
  EXPECT_TRUE(isHopByHop("foo", "x-a,, foo ,"));
  EXPECT_FALSE(isHopByHop("X-Secret", "close, x-secret2"));
  EXPECT_FALSE(isHopByHop("X-Secret", "x-secre"));
  EXPECT_FALSE(isHopByHop("", ", ,"));
  EXPECT_FALSE(isHopByHop("Host", "keep-alive"));
}

TEST(HelpersTest, Iequals) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("abc", "abd"));
  EXPECT_FALSE(iequals("abc", "ab"));
  // Only ASCII letters fold; '@' (0x40) is not '`' (0x60), and bytes >= 0x80 compare exactly.
  EXPECT_FALSE(iequals("@", "`"));
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("\xc3\x89", "\xc3\xa9"));
}

TEST(HelpersTest, FindHeaderReturnsTheFirstMatch) {
  const Header headers[] = {{"A", "1"}, {"b", "2"}, {"a", "3"}};
  EXPECT_EQ(findHeader(headers, 3, "a"), "1");
  EXPECT_EQ(findHeader(headers, 3, "B"), "2");
  EXPECT_EQ(findHeader(headers, 3, "c"), "");
  EXPECT_EQ(findHeader(headers, 0, "a"), "");
}

TEST(ErrorsTest, StatusAndNames) {
  const std::vector<std::pair<ParseError, std::string_view>> all = {
      {ParseError::kNone, "none"},
      {ParseError::kBadRequestLine, "bad_request_line"},
      {ParseError::kBadMethod, "bad_method"},
      {ParseError::kBadTarget, "bad_target"},
      {ParseError::kBadVersion, "bad_version"},
      {ParseError::kBadStatusLine, "bad_status_line"},
      {ParseError::kBadHeaderName, "bad_header_name"},
      {ParseError::kBadHeaderValue, "bad_header_value"},
      {ParseError::kObsFold, "obs_fold"},
      {ParseError::kBareCr, "bare_cr"},
      {ParseError::kRequestLineTooLong, "request_line_too_long"},
      {ParseError::kHeadTooLarge, "head_too_large"},
      {ParseError::kTooManyHeaders, "too_many_headers"},
      {ParseError::kBadContentLength, "bad_content_length"},
      {ParseError::kConflictingContentLength, "conflicting_content_length"},
      {ParseError::kContentLengthWithTransferEncoding, "content_length_with_transfer_encoding"},
      {ParseError::kBadTransferEncoding, "bad_transfer_encoding"},
      {ParseError::kMissingHost, "missing_host"},
      {ParseError::kMultipleHost, "multiple_host"},
      {ParseError::kBadHost, "bad_host"},
      {ParseError::kBadChunkSize, "bad_chunk_size"},
      {ParseError::kBadChunkExtension, "bad_chunk_extension"},
      {ParseError::kBadChunkData, "bad_chunk_data"},
      {ParseError::kBadTrailer, "bad_trailer"},
      {ParseError::kBodyTooLarge, "body_too_large"},
  };
  ASSERT_EQ(all.size(), static_cast<std::size_t>(ParseError::kBodyTooLarge) + 1);
  for (const auto& [error, name] : all) {
    EXPECT_EQ(errorName(error), name);
    const int expected =
        error == ParseError::kRequestLineTooLong                                     ? 414
        : error == ParseError::kHeadTooLarge || error == ParseError::kTooManyHeaders ? 431
        : error == ParseError::kBodyTooLarge                                         ? 413
                                                                                     : 400;
    EXPECT_EQ(statusFor(error), expected) << name;
  }
  EXPECT_EQ(errorName(static_cast<ParseError>(200)), "unknown");
}

}  // namespace
}  // namespace sluice::http
