#include <gtest/gtest.h>

#include <string>

#include "http/parser.hpp"
#include "test_support.hpp"

namespace sluice::http {
namespace {

using testing::newResponse;
using testing::parseResponseBytewise;

constexpr ParseStatus kOk = ParseStatus::kComplete;
constexpr ParseStatus kMore = ParseStatus::kIncomplete;
constexpr ParseStatus kErr = ParseStatus::kError;

class ResponseTest : public ::testing::Test {
protected:
  // Whole-buffer and byte-by-byte parses must agree; returns the whole-buffer result.
  ParseResult parse(std::string_view s, std::string_view method = "GET",
                    const Limits& limits = {}) {
    buf_.assign(s);
    const ParseResult whole = parseResponseHead(buf_, *head_, method, limits);
    auto inc = newResponse();
    const ParseResult r = parseResponseBytewise(buf_, *inc, method, limits);
    EXPECT_EQ(whole.status, r.status);
    EXPECT_EQ(whole.error, r.error) << errorName(whole.error) << " vs " << errorName(r.error);
    EXPECT_EQ(whole.consumed, r.consumed);
    if (whole.status == kOk) {
      EXPECT_EQ(head_->status, inc->status);
      EXPECT_EQ(head_->reason, inc->reason);
      EXPECT_EQ(head_->body, inc->body);
      EXPECT_EQ(head_->content_length, inc->content_length);
      EXPECT_EQ(head_->keep_alive, inc->keep_alive);
      EXPECT_EQ(head_->header_count, inc->header_count);
    }
    return whole;
  }

  ParseError parseError(std::string_view s, std::string_view method = "GET") {
    const ParseResult r = parse(s, method);
    EXPECT_EQ(r.status, kErr) << "accepted: " << s;
    return r.error;
  }

  // Body framing of a complete response, asserting it parsed.
  BodyKind body(std::string_view s, std::string_view method = "GET") {
    const ParseResult r = parse(s, method);
    EXPECT_EQ(r.status, kOk) << errorName(r.error) << ": " << s;
    return head_->body;
  }

  const ResponseHead& head() const { return *head_; }

  std::string buf_;
  std::unique_ptr<ResponseHead> head_ = newResponse();
};

TEST_F(ResponseTest, StatusLine) {
  const std::string_view resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
  const ParseResult r = parse(resp);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, resp.size() - 5);
  EXPECT_EQ(head().status, 200);
  EXPECT_EQ(head().reason, "OK");
  EXPECT_EQ(head().version_minor, 1);
  EXPECT_EQ(head().header_count, 2U);
  EXPECT_EQ(head().body, BodyKind::kContentLength);
  EXPECT_EQ(head().content_length, 5U);
  EXPECT_TRUE(head().keep_alive);
}

TEST_F(ResponseTest, ReasonPhraseVariants) {
  ASSERT_EQ(parse("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").status, kOk);
  EXPECT_EQ(head().reason, "Not Found");
  ASSERT_EQ(parse("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").status, kOk);
  EXPECT_EQ(head().reason, "");
  // Upstreams that omit the SP and reason entirely are tolerated.
  ASSERT_EQ(parse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").status, kOk);
  EXPECT_EQ(head().reason, "");
  ASSERT_EQ(parse("HTTP/1.0 200 D\xc3\xa9j\xc3\xa0\tvu\r\n\r\n").status, kOk);
  EXPECT_EQ(head().reason, "D\xc3\xa9j\xc3\xa0\tvu");
  EXPECT_EQ(head().version_minor, 0);
}

TEST_F(ResponseTest, BadStatusLines) {
  for (const char* line :
       {"HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 099 X", "HTTP/1.1 600 X",
        "HTTP/1.1  200 OK", "http/1.1 200 OK", "HTTP/1.1 2x0 OK", "HTTP/1.1", "HTTP/1.1 OK",
        " HTTP/1.1 200 OK", "HTTP/1.1\t200 OK", "HTTP/1.1 200\tOK", "HTTP/1.1 200 O\x01K",
        "HTTP/1.1 200 O\x7fK", "ICY 200 OK", "\r\nHTTP/1.1 200 OK"}) {
    SCOPED_TRACE(::testing::PrintToString(std::string(line)));
    EXPECT_EQ(parseError(std::string(line) + "\r\nContent-Length: 0\r\n\r\n"),
              ParseError::kBadStatusLine);
  }
  for (const char* line :
       {"HTTP/1.2 200 OK", "HTTP/2.0 200 OK", "HTTP/2 200 OK", "HTTP/0.9 200 X"}) {
    SCOPED_TRACE(line);
    EXPECT_EQ(parseError(std::string(line) + "\r\nContent-Length: 0\r\n\r\n"),
              ParseError::kBadVersion);
  }
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\rX\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(parseError("HTTP/1.1 200\n\r\n"), ParseError::kBareCr);
}

TEST_F(ResponseTest, NoBodyStatusesAndHead) {
  EXPECT_EQ(body("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"), BodyKind::kNone);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), BodyKind::kNone);
  EXPECT_EQ(body("HTTP/1.1 304 Not Modified\r\n\r\n"), BodyKind::kNone);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.1 100 Continue\r\n\r\n"), BodyKind::kNone);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"), BodyKind::kNone);
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD"), BodyKind::kNone);
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD"), BodyKind::kNone);
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\n\r\n", "HEAD"), BodyKind::kNone);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n", "HEAD"), BodyKind::kNone);
  EXPECT_EQ(head().content_length, 0U);
}

TEST_F(ResponseTest, SwitchingProtocols) {
  EXPECT_EQ(body("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                 "Upgrade: websocket\r\n\r\n"),
            BodyKind::kNone);
  EXPECT_FALSE(head().keep_alive);
}

TEST_F(ResponseTest, Connect) {
  EXPECT_EQ(body("HTTP/1.1 200 Connection Established\r\n\r\n", "CONNECT"), BodyKind::kNone);
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "CONNECT"), BodyKind::kNone);
  EXPECT_EQ(body("HTTP/1.1 407 Auth\r\nContent-Length: 5\r\n\r\n", "CONNECT"),
            BodyKind::kContentLength);
}

TEST_F(ResponseTest, Framing) {
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), BodyKind::kChunked);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_EQ(head().content_length, 0U);
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"),
            BodyKind::kChunked);
  EXPECT_EQ(
      body("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
      BodyKind::kChunked);
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;level=1 , chunked\r\n\r\n"),
            BodyKind::kChunked);

  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), BodyKind::kUntilClose);
  EXPECT_FALSE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            BodyKind::kUntilClose);
  EXPECT_FALSE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: br\r\n\r\n"),
            BodyKind::kUntilClose);

  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), BodyKind::kNone);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.1 500 Oops\r\nContent-Length: 42\r\n\r\n"), BodyKind::kContentLength);
  EXPECT_EQ(head().content_length, 42U);

  EXPECT_EQ(body("HTTP/1.1 200 OK\r\n\r\n"), BodyKind::kUntilClose);
  EXPECT_FALSE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.0 200 OK\r\n\r\n"), BodyKind::kUntilClose);
  EXPECT_FALSE(head().keep_alive);
}

TEST_F(ResponseTest, FramingErrors) {
  EXPECT_EQ(
      parseError("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
      ParseError::kContentLengthWithTransferEncoding);
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"),
            ParseError::kContentLengthWithTransferEncoding);
  // Strict even where the framing would not be used.
  EXPECT_EQ(
      parseError("HTTP/1.1 204 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
      ParseError::kContentLengthWithTransferEncoding);
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            ParseError::kConflictingContentLength);
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "HEAD"),
            ParseError::kConflictingContentLength);
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
            ParseError::kBadContentLength);
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            ParseError::kBadContentLength);
  for (const char* te :
       {"chunked, chunked", "chunked;x=1", "", "gzip,,chunked", "gzip x", "\"chunked\""}) {
    SCOPED_TRACE(te);
    EXPECT_EQ(parseError(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ") + te + "\r\n\r\n"),
              ParseError::kBadTransferEncoding);
  }
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
            ParseError::kBadTransferEncoding);
  EXPECT_EQ(parseError("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseError::kBadTransferEncoding);
}

TEST_F(ResponseTest, KeepAlive) {
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"),
            BodyKind::kContentLength);
  EXPECT_FALSE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"), BodyKind::kContentLength);
  EXPECT_FALSE(head().keep_alive);
  EXPECT_EQ(body("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: Keep-Alive\r\n\r\n"),
            BodyKind::kContentLength);
  EXPECT_TRUE(head().keep_alive);
}

TEST_F(ResponseTest, FieldSyntaxIsAsStrictAsRequests) {
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nX : y\r\n\r\n"), ParseError::kBadHeaderName);
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n"), ParseError::kObsFold);
  constexpr char kNulValue[] = "HTTP/1.1 200 OK\r\nX: \0\r\n\r\n";
  EXPECT_EQ(parseError(std::string(kNulValue, sizeof kNulValue - 1)), ParseError::kBadHeaderValue);
  EXPECT_EQ(parseError("HTTP/1.1 200 OK\r\nX: y\n\r\n"), ParseError::kBareCr);
  // No Host requirement for responses.
  EXPECT_EQ(body("HTTP/1.1 200 OK\r\nHost: a b\r\nContent-Length: 0\r\n\r\n"), BodyKind::kNone);
}

TEST_F(ResponseTest, Limits) {
  const Limits small{.max_request_line = 8192, .max_head_bytes = 64, .max_headers = 2};
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", "GET", small).status, kOk);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", "GET", small).error,
            ParseError::kTooManyHeaders);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nA: " + std::string(60, 'a') + "\r\n\r\n", "GET", small).error,
            ParseError::kHeadTooLarge);
  EXPECT_EQ(parse("HTTP/1.1 200 " + std::string(100, 'r'), "GET", small).error,
            ParseError::kHeadTooLarge);
}

TEST_F(ResponseTest, InterimThenFinalResponseBackToBack) {
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string final_resp = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  const std::string all = interim + final_resp;
  auto h = newResponse();
  ParseResult r = parseResponseHead(all, *h, "PUT");
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, interim.size());
  EXPECT_EQ(h->status, 100);
  r = parseResponseHead(std::string_view(all).substr(r.consumed), *h, "PUT");
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(h->status, 201);
  EXPECT_EQ(r.consumed, final_resp.size() - 2);
}

TEST_F(ResponseTest, PrefixesAreIncomplete) {
  const std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto h = newResponse();
  for (std::size_t n = 0; n < resp.size(); ++n) {
    EXPECT_EQ(parseResponseHead(std::string_view(resp).substr(0, n), *h, "GET").status, kMore) << n;
  }
}

}  // namespace
}  // namespace sluice::http
