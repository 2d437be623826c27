#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/parser.hpp"
#include "test_support.hpp"

namespace sluice::http {
namespace {

using testing::newRequest;
using testing::parseRequestBytewise;

constexpr ParseStatus kOk = ParseStatus::kComplete;
constexpr ParseStatus kMore = ParseStatus::kIncomplete;
constexpr ParseStatus kErr = ParseStatus::kError;

void expectSameHead(const RequestHead& a, const RequestHead& b) {
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.query, b.query);
  EXPECT_EQ(a.authority, b.authority);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.version_minor, b.version_minor);
  ASSERT_EQ(a.header_count, b.header_count);
  for (std::size_t i = 0; i < a.header_count; ++i) {
    EXPECT_EQ(a.headers[i].name, b.headers[i].name);
    EXPECT_EQ(a.headers[i].value, b.headers[i].value);
  }
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.content_length, b.content_length);
  EXPECT_EQ(a.keep_alive, b.keep_alive);
  EXPECT_EQ(a.expect_continue, b.expect_continue);
  EXPECT_EQ(a.upgrade, b.upgrade);
}

class RequestTest : public ::testing::Test {
protected:
  // Parses `s` whole and again as it would arrive over a socket, and requires the two to agree,
  // so every case below also checks incremental parsing.
  ParseResult parse(std::string_view s, const Limits& limits = {}) {
    buf_.assign(s);
    const ParseResult whole = parseRequestHead(buf_, *head_, limits);
    auto inc = newRequest();
    ParseResult r;
    if (buf_.size() <= 4096) {
      r = parseRequestBytewise(buf_, *inc, limits);
    } else {
      // Big inputs grow in uneven steps to keep the test quadratic-free but still split lines.
      for (std::size_t n = 0;; n = std::min(buf_.size(), n + 509)) {
        r = parseRequestHead(std::string_view(buf_).substr(0, n), *inc, limits);
        if (r.status != kMore || n == buf_.size()) {
          break;
        }
      }
    }
    EXPECT_EQ(whole.status, r.status) << errorName(whole.error) << " vs " << errorName(r.error);
    EXPECT_EQ(whole.error, r.error) << errorName(whole.error) << " vs " << errorName(r.error);
    EXPECT_EQ(whole.consumed, r.consumed);
    if (whole.status == kOk) {
      expectSameHead(*head_, *inc);
    }
    return whole;
  }

  ParseError parseError(std::string_view s, const Limits& limits = {}) {
    const ParseResult r = parse(s, limits);
    EXPECT_EQ(r.status, kErr) << "accepted: " << s;
    return r.error;
  }

  const RequestHead& head() const { return *head_; }

  std::string buf_;
  std::unique_ptr<RequestHead> head_ = newRequest();
};

// --- request line ---------------------------------------------------------------------------

TEST_F(RequestTest, SimpleGet) {
  const std::string_view req =
      "GET /index.html?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\n"
      "User-Agent: t\r\n\r\n";
  const ParseResult r = parse(req);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, req.size());
  EXPECT_EQ(head().method, "GET");
  EXPECT_EQ(head().target, "/index.html?x=1&y=2");
  EXPECT_EQ(head().path, "/index.html");
  EXPECT_EQ(head().query, "x=1&y=2");
  EXPECT_EQ(head().authority, "");
  EXPECT_EQ(head().host, "example.com");
  EXPECT_EQ(head().version_minor, 1);
  ASSERT_EQ(head().header_count, 2U);
  EXPECT_EQ(head().headers[0].name, "Host");
  EXPECT_EQ(head().headers[1].name, "User-Agent");
  EXPECT_EQ(head().headers[1].value, "t");
  EXPECT_EQ(head().body, BodyKind::kNone);
  EXPECT_EQ(head().content_length, 0U);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_FALSE(head().expect_continue);
  EXPECT_FALSE(head().upgrade);
}

TEST_F(RequestTest, ViewsPointIntoTheBuffer) {
  ASSERT_EQ(parse("GET /p?q HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
  const char* b = buf_.data();
  const char* e = b + buf_.size();
  for (const std::string_view v : {head().method, head().target, head().path, head().query,
                                   head().host, head().headers[0].name}) {
    EXPECT_GE(v.data(), b);
    EXPECT_LE(v.data() + v.size(), e);
  }
}

TEST_F(RequestTest, QuerySplitsAtFirstQuestionMark) {
  ASSERT_EQ(parse("GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
  EXPECT_EQ(head().path, "/a");
  EXPECT_EQ(head().query, "b?c");
  ASSERT_EQ(parse("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
  EXPECT_EQ(head().path, "/a");
  EXPECT_EQ(head().query, "");
  ASSERT_EQ(parse("GET /?x HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
  EXPECT_EQ(head().path, "/");
  EXPECT_EQ(head().query, "x");
}

TEST_F(RequestTest, TargetAllowsAllVisibleAsciiButHash) {
  const std::string target = "/!$&'()*+,;=:@-._~%20\"<>\\^`{|}[]";
  ASSERT_EQ(parse("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
  EXPECT_EQ(head().path, target);
}

TEST_F(RequestTest, Http10WithoutHost) {
  const ParseResult r = parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(head().version_minor, 0);
  EXPECT_EQ(head().host, "");
  EXPECT_FALSE(head().keep_alive);
}

TEST_F(RequestTest, AbsoluteForm) {
  ASSERT_EQ(parse("GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n").status, kOk);
  EXPECT_EQ(head().authority, "example.com:8080");
  EXPECT_EQ(head().path, "/a/b");
  EXPECT_EQ(head().query, "c=d");
  EXPECT_EQ(head().host, "x");  // precedence is the caller's business

  ASSERT_EQ(parse("GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n").status, kOk);
  EXPECT_EQ(head().authority, "example.com");
  EXPECT_EQ(head().path, "/");
  EXPECT_EQ(head().query, "");

  ASSERT_EQ(parse("GET http://example.com?q HTTP/1.1\r\nHost: x\r\n\r\n").status, kOk);
  EXPECT_EQ(head().path, "/");
  EXPECT_EQ(head().query, "q");

  ASSERT_EQ(parse("GET HTTPS://[::1]:443/x HTTP/1.1\r\nHost: x\r\n\r\n").status, kOk);
  EXPECT_EQ(head().authority, "[::1]:443");
  EXPECT_EQ(head().path, "/x");
}

TEST_F(RequestTest, AbsoluteFormStillNeedsHostIn11) {
  EXPECT_EQ(parseError("GET http://example.com/ HTTP/1.1\r\n\r\n"), ParseError::kMissingHost);
}

TEST_F(RequestTest, BadAbsoluteForms) {
  for (const char* t : {"ftp://h/", "http:/h/", "http:///x", "http://u@h/", "http://h:/x",
                        "http://h:99999/", "http://a%zz/", "mailto:x", "http//h/", "h/x"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(parseError(std::string("GET ") + t + " HTTP/1.1\r\nHost: h\r\n\r\n"),
              ParseError::kBadTarget);
  }
}

TEST_F(RequestTest, AsteriskOnlyWithOptions) {
  ASSERT_EQ(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
  EXPECT_EQ(head().path, "*");
  EXPECT_EQ(parseError("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadTarget);
  EXPECT_EQ(parseError("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadTarget);
}

TEST_F(RequestTest, ConnectNeedsAuthorityForm) {
  ASSERT_EQ(parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").status, kOk);
  EXPECT_EQ(head().authority, "example.com:443");
  EXPECT_EQ(head().path, "");
  ASSERT_EQ(parse("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
  EXPECT_EQ(head().authority, "[2001:db8::1]:443");
  EXPECT_EQ(parseError("CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadTarget);
  EXPECT_EQ(parseError("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadTarget);
  EXPECT_EQ(parseError("CONNECT http://h:1/ HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadTarget);
  // Authority-form is only for CONNECT.
  EXPECT_EQ(parseError("GET example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadTarget);
}

TEST_F(RequestTest, OriginFormRejectsBadBytes) {
  const std::vector<std::string> bad = {"/a#f",
                                        std::string("/a\x7f"),
                                        "/a\x80",
                                        "/a\xff",
                                        std::string("/a\x00", 3),
                                        "/a\x01",
                                        "/a\tb",
                                        "/a\x0b"};
  for (const std::string& t : bad) {
    SCOPED_TRACE(::testing::PrintToString(t));
    EXPECT_EQ(parseError("GET " + t + " HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadTarget);
  }
  EXPECT_EQ(parseError("GET foo HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadTarget);
}

TEST_F(RequestTest, RequestLineStructure) {
  EXPECT_EQ(parseError("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(parseError("GET /  HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(parseError(" GET / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(parseError("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(parseError("GET /\r\n\r\n"), ParseError::kBadRequestLine);  // HTTP/0.9
  EXPECT_EQ(parseError("GET\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(parseError("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(parseError("GET / HTTP/1.1 x\r\nHost: h\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(parseError("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadVersion);
}

TEST_F(RequestTest, MethodMustBeToken) {
  EXPECT_EQ(parseError("G@T / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadMethod);
  EXPECT_EQ(parseError("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadMethod);
  EXPECT_EQ(parseError("G\x80T / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBadMethod);
  constexpr char kNulMethod[] = "G\0T / HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(parseError(std::string(kNulMethod, sizeof kNulMethod - 1)), ParseError::kBadMethod);
  // Methods are case-sensitive tokens: unusual ones are the router's concern, not ours.
  ASSERT_EQ(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
  ASSERT_EQ(parse("M-SEARCH! / HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
}

TEST_F(RequestTest, Versions) {
  for (const char* v : {"HTTP/1.2", "HTTP/2.0", "http/1.1", "HTTP/1.10", "HTTP/1", "HTTP/0.9",
                        "HTTPS/1.1", "HTTP/1.x", "HTTP/11"}) {
    SCOPED_TRACE(v);
    EXPECT_EQ(parseError(std::string("GET / ") + v + "\r\nHost: h\r\n\r\n"),
              ParseError::kBadVersion);
  }
}

TEST_F(RequestTest, LeadingEmptyLinesAreSkippedButBounded) {
  const std::string req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  ParseResult r = parse("\r\n" + req);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, req.size() + 2);
  EXPECT_EQ(head().method, "GET");
  r = parse("\r\n\r\n\r\n\r\n" + req);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, req.size() + 8);
  EXPECT_EQ(parseError("\r\n\r\n\r\n\r\n\r\n" + req), ParseError::kBadRequestLine);
  EXPECT_EQ(parseError("\n" + req), ParseError::kBareCr);
  EXPECT_EQ(parseError("\r" + req), ParseError::kBareCr);
  EXPECT_EQ(parse("\r\n\r\n").status, kMore);
}

// --- header fields ----------------------------------------------------------------------------

TEST_F(RequestTest, ValuesAreOwsTrimmed) {
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost:\texample.com \t\r\nX-A:  a b\t c \r\nX-Empty:\r\n"
                  "X-Ws: \t \r\n\r\n")
                .status,
            kOk);
  EXPECT_EQ(head().host, "example.com");
  EXPECT_EQ(findHeader(head().headers, head().header_count, "x-a"), "a b\t c");
  EXPECT_EQ(findHeader(head().headers, head().header_count, "X-EMPTY"), "");
  EXPECT_EQ(findHeader(head().headers, head().header_count, "x-ws"), "");
  EXPECT_EQ(findHeader(head().headers, head().header_count, "absent"), "");
}

TEST_F(RequestTest, ObsTextAllowedInValues) {
  ASSERT_EQ(
      parse("GET / HTTP/1.1\r\nHost: h\r\nX-Name: Gr\xc3\xbc\xc3\x9f Gott \xff\r\n\r\n").status,
      kOk);
  EXPECT_EQ(head().headers[1].value, "Gr\xc3\xbc\xc3\x9f Gott \xff");
}

TEST_F(RequestTest, ScannerBoundaries) {
  // Every length and every position of an interesting byte, across 16- and 8-byte strides and
  // the bytewise tail, for both the value and the target scanner.
  for (std::size_t len = 1; len <= 40; ++len) {
    for (std::size_t at = 0; at < len; ++at) {
      SCOPED_TRACE(::testing::Message() << "len " << len << " at " << at);
      std::string value(len, 'v');
      value[at] = '\x01';
      EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nX: " + value + "\r\n\r\n"),
                ParseError::kBadHeaderValue);
      value[at] = '\x7f';
      EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nX: " + value + "\r\n\r\n"),
                ParseError::kBadHeaderValue);
      for (const char ok : {'\t', '\x80', '\xff', ' ', '~'}) {
        value[at] = ok;
        ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nX: <" + value + ">\r\n\r\n").status, kOk);
        EXPECT_EQ(head().headers[1].value, "<" + value + ">");
      }

      std::string target = "/" + std::string(len, 't');
      for (const char bad : {'#', '\x7f', '\x80', '\xff', '\x1f', '\t'}) {
        target[at + 1] = bad;
        EXPECT_EQ(parseError("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n"),
                  ParseError::kBadTarget);
      }
      target[at + 1] = '~';
      ASSERT_EQ(parse("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n").status, kOk);
      EXPECT_EQ(head().path, target);
    }
  }
}

TEST_F(RequestTest, BadHeaderValueBytes) {
  for (const char c : {'\0', '\x01', '\x0b', '\x0c', '\x1f', '\x7f'}) {
    SCOPED_TRACE(static_cast<int>(c));
    std::string req = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a?b\r\n\r\n";
    req[req.find('?')] = c;
    EXPECT_EQ(parseError(req), ParseError::kBadHeaderValue);
  }
}

TEST_F(RequestTest, BadHeaderNames) {
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), ParseError::kBadHeaderName);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"), ParseError::kBadHeaderName);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n"), ParseError::kBadHeaderName);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nFoo@Bar: x\r\n\r\n"),
            ParseError::kBadHeaderName);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nFoo\r\n\r\n"), ParseError::kBadHeaderName);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nF\xc3\xa4: x\r\n\r\n"),
            ParseError::kBadHeaderName);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\n\"X\": x\r\n\r\n"),
            ParseError::kBadHeaderName);
}

TEST_F(RequestTest, ObsFoldRejected) {
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), ParseError::kObsFold);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n"), ParseError::kObsFold);
  // Whitespace between the request line and the first field (RFC 9112 §2.2).
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), ParseError::kObsFold);
}

TEST_F(RequestTest, BareCrAndLf) {
  EXPECT_EQ(parseError("GET / HTTP/1.1\nHost: h\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\rHost: h\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\n\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nX\n: a\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nX\r: a\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET\r / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\r\nHost: h\r\n\r\n"), ParseError::kBareCr);
}

// --- limits -----------------------------------------------------------------------------------

TEST_F(RequestTest, RequestLineLimit) {
  const Limits limits{.max_request_line = 64, .max_head_bytes = 4096, .max_headers = 10};
  const std::string_view rest = " HTTP/1.1\r\nHost: h\r\n\r\n";
  // "GET " + target + " HTTP/1.1" is exactly 64 bytes: accepted.
  const std::string at_limit = "GET /" + std::string(64 - 4 - 1 - 9, 'a');
  ASSERT_EQ(at_limit.size() + 9, 64U);
  EXPECT_EQ(parse(at_limit + std::string(rest), limits).status, kOk);
  EXPECT_EQ(parseError(at_limit + "a" + std::string(rest), limits),
            ParseError::kRequestLineTooLong);
  // An endless request line fails once it passes the limit, without waiting for a CRLF.
  const std::string endless = "GET /" + std::string(200, 'a');
  EXPECT_EQ(parse(endless.substr(0, 64), limits).status, kMore);
  EXPECT_EQ(parseError(endless.substr(0, 65), limits), ParseError::kRequestLineTooLong);
  EXPECT_EQ(parseError(std::string(100, 'G'), limits), ParseError::kRequestLineTooLong);
  EXPECT_EQ(statusFor(ParseError::kRequestLineTooLong), 414);
}

TEST_F(RequestTest, DefaultRequestLineLimitIs8KiB) {
  const std::string head_rest = " HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string ok_target = "/" + std::string(8192 - 4 - 9 - 1, 'a');
  EXPECT_EQ(parse("GET " + ok_target + head_rest).status, kOk);
  EXPECT_EQ(parseError("GET " + ok_target + "a" + head_rest), ParseError::kRequestLineTooLong);
}

TEST_F(RequestTest, HeadLimit) {
  const Limits limits{.max_request_line = 8192, .max_head_bytes = 100, .max_headers = 100};
  std::string req = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  const std::size_t fixed = req.size() + 4;  // + "\r\n\r\n"
  req += std::string(100 - fixed, 'x') + "\r\n\r\n";
  ASSERT_EQ(req.size(), 100U);
  ParseResult r = parse(req, limits);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, 100U);
  // Body bytes after the head do not count against the head.
  r = parse(req + "more bytes", limits);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, 100U);

  std::string over = req;
  over.insert(over.find("\r\n\r\n"), "x");
  EXPECT_EQ(parseError(over, limits), ParseError::kHeadTooLarge);
  // An incomplete head already past the limit fails now instead of waiting forever.
  EXPECT_EQ(parseError(over.substr(0, 101), limits), ParseError::kHeadTooLarge);
  EXPECT_EQ(parse(over.substr(0, 100), limits).status, kMore);
  EXPECT_EQ(statusFor(ParseError::kHeadTooLarge), 431);
}

TEST_F(RequestTest, DefaultHeadLimitIs32KiB) {
  std::string req = "GET / HTTP/1.1\r\nHost: h\r\n";
  while (req.size() < 40000) {
    req += "X-Pad: " + std::string(1000, 'p') + "\r\n";
  }
  req += "\r\n";
  EXPECT_EQ(parseError(req), ParseError::kHeadTooLarge);
}

TEST_F(RequestTest, SmallHeadLimitBeatsLongRequestLine) {
  const Limits limits{.max_request_line = 8192, .max_head_bytes = 32, .max_headers = 100};
  EXPECT_EQ(parseError("GET /" + std::string(40, 'a'), limits), ParseError::kHeadTooLarge);
}

TEST_F(RequestTest, HeaderCountLimit) {
  std::string req = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 1; i < 100; ++i) {
    req += "X-" + std::to_string(i) + ": v\r\n";
  }
  ParseResult r = parse(req + "\r\n");
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(head().header_count, 100U);
  EXPECT_EQ(head().headers[99].name, "X-99");
  EXPECT_EQ(parseError(req + "X-100: v\r\n\r\n"), ParseError::kTooManyHeaders);
  // Fails as soon as the 101st field starts, not when the head ends.
  EXPECT_EQ(parseError(req + "X"), ParseError::kTooManyHeaders);
  EXPECT_EQ(statusFor(ParseError::kTooManyHeaders), 431);

  const Limits three{.max_request_line = 8192, .max_head_bytes = 32768, .max_headers = 3};
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", three).status, kOk);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", three),
            ParseError::kTooManyHeaders);
  // A limit above kMaxHeaders is clamped to the array size.
  const Limits huge{.max_request_line = 8192, .max_head_bytes = 32768, .max_headers = 1000};
  EXPECT_EQ(parseError(req + "X-100: v\r\n\r\n", huge), ParseError::kTooManyHeaders);
}

// --- framing ----------------------------------------------------------------------------------

TEST_F(RequestTest, ContentLength) {
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello").status, kOk);
  EXPECT_EQ(head().body, BodyKind::kContentLength);
  EXPECT_EQ(head().content_length, 5U);
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n").status, kOk);
  EXPECT_EQ(head().body, BodyKind::kNone);
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n").status, kOk);
  EXPECT_EQ(head().content_length, 7U);
  ASSERT_EQ(
      parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n").status,
      kOk);
  EXPECT_EQ(head().content_length, UINT64_MAX);
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\t12\t\r\n\r\n").status, kOk);
  EXPECT_EQ(head().content_length, 12U);
}

TEST_F(RequestTest, BadContentLength) {
  for (const char* v : {"+5", "-1", "0x10", "5 5", "5,5", "5, 5", "", "1e3", "5.0", "\"5\"",
                        "18446744073709551616", "99999999999999999999999", "٥"}) {
    SCOPED_TRACE(v);
    EXPECT_EQ(
        parseError(std::string("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ") + v + "\r\n\r\n"),
        ParseError::kBadContentLength);
  }
}

TEST_F(RequestTest, RepeatedContentLength) {
  EXPECT_EQ(parseError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                       "Content-Length: 5\r\n\r\n"),
            ParseError::kConflictingContentLength);
  EXPECT_EQ(parseError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                       "content-length: 6\r\n\r\n"),
            ParseError::kConflictingContentLength);
}

TEST_F(RequestTest, Chunked) {
  for (const char* v : {"chunked", "Chunked", "CHUNKED", "\tchunked\t"}) {
    SCOPED_TRACE(v);
    ASSERT_EQ(
        parse(std::string("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:") + v + "\r\n\r\n")
            .status,
        kOk);
    EXPECT_EQ(head().body, BodyKind::kChunked);
    EXPECT_EQ(head().content_length, 0U);
  }
}

TEST_F(RequestTest, BadTransferEncoding) {
  for (const char* v : {"gzip", "xchunked", "chunkedx", "chunked, chunked", "gzip, chunked",
                        "chunked, identity", "identity", "", "chunked;q=1", "\"chunked\"",
                        "chunked,", ",chunked", "chunked chunked", "ch\xc3\xbcnked"}) {
    SCOPED_TRACE(v);
    EXPECT_EQ(parseError(std::string("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ") + v +
                         "\r\n\r\n"),
              ParseError::kBadTransferEncoding);
  }
  EXPECT_EQ(parseError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
            ParseError::kBadTransferEncoding);
  EXPECT_EQ(parseError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseError::kBadTransferEncoding);
}

TEST_F(RequestTest, ContentLengthWithTransferEncoding) {
  EXPECT_EQ(parseError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
            ParseError::kContentLengthWithTransferEncoding);
  EXPECT_EQ(parseError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 0\r\n\r\n"),
            ParseError::kContentLengthWithTransferEncoding);
}

// --- Host -------------------------------------------------------------------------------------

TEST_F(RequestTest, HostRequiredOnceIn11) {
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nX: y\r\n\r\n"), ParseError::kMissingHost);
  EXPECT_EQ(parseError("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), ParseError::kMultipleHost);
  EXPECT_EQ(parseError("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), ParseError::kMultipleHost);
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nHost: a\r\n\r\n").status, kOk);
  EXPECT_EQ(head().host, "a");
}

TEST_F(RequestTest, HostSyntax) {
  for (const char* h :
       {"example.com", "EXAMPLE.com:80", "127.0.0.1", "127.0.0.1:65535", "[::1]", "[::1]:8080",
        "[2001:db8::a:b:1]", "[::ffff:192.0.2.1]:1", "xn--bcher-kva.example", "a-b_c~d", "%41bc",
        "a!$&'()*+,;=b", "example.com.", "h:0"}) {
    SCOPED_TRACE(h);
    ASSERT_EQ(parse(std::string("GET / HTTP/1.1\r\nHost: ") + h + "\r\n\r\n").status, kOk);
    EXPECT_EQ(head().host, h);
  }
  for (const char* h : {"",
                        "a b",
                        "host:99999",
                        "host:65536",
                        "host:123456",
                        "host:",
                        ":80",
                        "a@b",
                        "user:pw@host",
                        "[::1",
                        "::1",
                        "[::1]x",
                        "[::1]:",
                        "[]",
                        "[fe80::1%25eth0]",
                        "[v1.x]",
                        "a/b",
                        "a?b",
                        "a#b",
                        "%4",
                        "%zz",
                        "h:8a",
                        "h:80:80",
                        "[1:2:3:4:5:6:7:8:9]",
                        "\xc3\xa4.example",
                        "a\"b",
                        "a\\b"}) {
    SCOPED_TRACE(h);
    EXPECT_EQ(parseError(std::string("GET / HTTP/1.1\r\nHost: ") + h + "\r\n\r\n"),
              ParseError::kBadHost);
  }
}

// --- connection semantics ---------------------------------------------------------------------

TEST_F(RequestTest, KeepAlive) {
  struct Case {
    const char* version;
    const char* connection;  // nullptr: no header
    bool keep_alive;
  };
  const Case cases[] = {
      {"1.1", nullptr, true},
      {"1.1", "close", false},
      {"1.1", "Close", false},
      {"1.1", "keep-alive, CLOSE", false},
      {"1.1", "keep-alive", true},
      {"1.1", "upgrade", true},
      {"1.1", "closed", true},
      {"1.0", nullptr, false},
      {"1.0", "keep-alive", true},
      {"1.0", "Keep-Alive", true},
      {"1.0", "foo , keep-alive ", true},
      {"1.0", "keep-alive, close", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.version) + " " + (c.connection ? c.connection : "-"));
    std::string req = std::string("GET / HTTP/") + c.version + "\r\nHost: h\r\n";
    if (c.connection) {
      req += std::string("Connection: ") + c.connection + "\r\n";
    }
    ASSERT_EQ(parse(req + "\r\n").status, kOk);
    EXPECT_EQ(head().keep_alive, c.keep_alive);
  }
  // Several Connection fields form one list.
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n").status,
            kOk);
  EXPECT_FALSE(head().keep_alive);
}

TEST_F(RequestTest, Upgrade) {
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                  "Upgrade: websocket\r\n\r\n")
                .status,
            kOk);
  EXPECT_TRUE(head().upgrade);
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").status, kOk);
  EXPECT_FALSE(head().upgrade);
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n").status, kOk);
  EXPECT_FALSE(head().upgrade);
}

TEST_F(RequestTest, ExpectContinue) {
  ASSERT_EQ(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n")
                .status,
            kOk);
  EXPECT_TRUE(head().expect_continue);
  ASSERT_EQ(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n").status, kOk);
  EXPECT_FALSE(head().expect_continue);
}

// --- pipelining, incremental, reuse -----------------------------------------------------------

TEST_F(RequestTest, PipelinedHeadsConsumeExactly) {
  const std::string first = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string second = "POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  const std::string third = "GET /three HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string all = first + second + third;

  auto h = newRequest();
  ParseResult r = parseRequestHead(all, *h);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, first.size());
  EXPECT_EQ(h->path, "/one");

  std::string_view rest = std::string_view(all).substr(r.consumed);
  r = parseRequestHead(rest, *h);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, second.size() - 3);
  EXPECT_EQ(h->path, "/two");
  ASSERT_EQ(h->body, BodyKind::kContentLength);

  rest = rest.substr(r.consumed + h->content_length);
  r = parseRequestHead(rest, *h);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, third.size());
  EXPECT_EQ(h->path, "/three");
  EXPECT_EQ(rest.size(), r.consumed);
}

TEST_F(RequestTest, EveryPrefixOfAValidHeadIsIncomplete) {
  const std::string req =
      "\r\nPOST http://h:1/p?q HTTP/1.1\r\nHost: h\r\nX-Tab:\tv\t\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  auto h = newRequest();
  for (std::size_t n = 0; n < req.size(); ++n) {
    const ParseResult r = parseRequestHead(std::string_view(req).substr(0, n), *h);
    EXPECT_EQ(r.status, kMore) << n;
    EXPECT_EQ(r.error, ParseError::kNone) << n;
  }
  const ParseResult r = parse(req);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, req.size());
}

TEST_F(RequestTest, OutputIsResetBetweenParses) {
  ASSERT_EQ(parse("POST /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nExpect: 100-continue\r\n"
                  "Connection: upgrade\r\nUpgrade: x\r\n\r\n")
                .status,
            kOk);
  ASSERT_EQ(parse("GET /c HTTP/1.0\r\n\r\n").status, kOk);
  EXPECT_EQ(head().query, "");
  EXPECT_EQ(head().host, "");
  EXPECT_EQ(head().header_count, 0U);
  EXPECT_EQ(head().body, BodyKind::kNone);
  EXPECT_EQ(head().content_length, 0U);
  EXPECT_FALSE(head().expect_continue);
  EXPECT_FALSE(head().upgrade);
  EXPECT_FALSE(head().keep_alive);
}

TEST_F(RequestTest, EmptyBufferIsIncomplete) {
  const ParseResult r = parse("");
  EXPECT_EQ(r.status, kMore);
  EXPECT_EQ(r.error, ParseError::kNone);
  EXPECT_EQ(r.consumed, 0U);
}

TEST_F(RequestTest, ErrorsDoNotWaitForTheEndOfTheHead) {
  auto h = newRequest();
  EXPECT_EQ(parseRequestHead("G@", *h).error, ParseError::kBadMethod);
  EXPECT_EQ(parseRequestHead("GET /#", *h).error, ParseError::kBadTarget);
  EXPECT_EQ(parseRequestHead("GET / HTTP/2", *h).error, ParseError::kBadVersion);
  EXPECT_EQ(parseRequestHead("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n", *h).error,
            ParseError::kBadContentLength);
  EXPECT_EQ(parseRequestHead("GET / HTTP/1.1\r\nX: \x01", *h).error, ParseError::kBadHeaderValue);
  // A CR at the very end might still be followed by LF: wait for it.
  EXPECT_EQ(parseRequestHead("GET / HTTP/1.1\r\nX: a\r", *h).status, kMore);
}

}  // namespace
}  // namespace sluice::http
