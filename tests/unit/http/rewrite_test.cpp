// The head rewriting and connection-reuse rules of http/rewrite, on parsed heads.
#include <string>

#include <gtest/gtest.h>

#include "http/rewrite.hpp"
#include "test_support.hpp"

namespace sluice::http {
namespace {

using testing::newRequest;
using testing::newResponse;

// The upstream head for `raw` (a whole request head), with `path` as the routed path.
std::string upstreamHead(const std::string& raw, std::string_view path = "/p",
                         std::string_view client = "192.0.2.7") {
  auto req = newRequest();
  const ParseResult pr = parseRequestHead(raw, *req);
  EXPECT_EQ(pr.status, ParseStatus::kComplete) << raw;
  std::string out;
  std::string scratch;
  buildUpstreamHead(*req, path, {.client_ip = client}, out, scratch);
  return out;
}

std::string clientHead(const std::string& raw, std::string_view method, bool close,
                       bool http10 = false) {
  auto resp = newResponse();
  const ParseResult pr = parseResponseHead(raw, *resp, method);
  EXPECT_EQ(pr.status, ParseStatus::kComplete) << raw;
  std::string out;
  buildResponseHead(*resp, close, http10, out);
  return out;
}

TEST(UpstreamHead, KeepsEndToEndFieldsAndAddsForwarding) {
  EXPECT_EQ(upstreamHead("GET /a/../p?x=1 HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n"),
            "GET /p?x=1 HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n"
            "X-Forwarded-For: 192.0.2.7\r\nX-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: a.test\r\n\r\n");
}

TEST(UpstreamHead, DropsHopByHopAndFieldsNamedInConnection) {
  const std::string head = upstreamHead(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n"
      "TE: trailers\r\nProxy-Connection: x\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n");
  for (const char* gone : {"Connection:", "Keep-Alive", "TE:", "Proxy-Connection", "X-Secret"}) {
    EXPECT_EQ(head.find(gone), std::string::npos) << gone << " in\n" << head;
  }
  EXPECT_NE(head.find("X-Kept: 2\r\n"), std::string::npos);
}

TEST(UpstreamHead, FramingComesFromTheParseNotFromTheMessage) {
  // Connection naming Content-Length must not strip the framing the upstream needs.
  std::string head = upstreamHead(
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\n");
  EXPECT_NE(head.find("Content-Length: 5\r\n"), std::string::npos) << head;
  head = upstreamHead(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_NE(head.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("Expect"), std::string::npos) << head;
}

TEST(UpstreamHead, AnUntrustedPeersForwardingFieldsAreReplaced) {
  const std::string head = upstreamHead(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n"
      "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\n"
      "X-Forwarded-Prefix: /evil\r\nX-Real-IP: 10.0.0.3\r\nForwarded: for=10.0.0.4\r\n"
      "X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-Kept: 1\r\n\r\n");
  EXPECT_EQ(head,
            "GET /p HTTP/1.1\r\nHost: a\r\nX-Kept: 1\r\nX-Forwarded-For: 192.0.2.7\r\n"
            "X-Real-IP: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n");
}

TEST(UpstreamHead, AbsoluteFormAuthorityBecomesHost) {
  const std::string head =
      upstreamHead("GET http://b.test/x HTTP/1.1\r\nHost: ignored\r\n\r\n", "/x");
  EXPECT_NE(head.find("Host: b.test\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("ignored"), std::string::npos) << head;
}

TEST(UpstreamHead, Http10WithoutHostGetsAnEmptyHostAndUpgradeIsRewritten) {
  EXPECT_NE(upstreamHead("GET / HTTP/1.0\r\n\r\n").find("Host: \r\n"), std::string::npos);
  const std::string head = upstreamHead(
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_NE(head.find("Connection: upgrade\r\nUpgrade: websocket\r\n"), std::string::npos) << head;
}

TEST(ResponseHead, FramingKeptAndHopByHopDropped) {
  EXPECT_EQ(clientHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-A\r\n"
                       "X-A: 1\r\nServer: s\r\n\r\n",
                       "GET", false),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: s\r\n\r\n");
  EXPECT_EQ(clientHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET", true),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n");
}

TEST(ResponseHead, ContentLengthOfAHeadResponseDescribesTheEntity) {
  EXPECT_EQ(clientHead("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD", false, true),
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: keep-alive\r\n\r\n");
}

TEST(ReuseRules, ClientCloses) {
  auto resp = newResponse();
  ASSERT_EQ(parseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", *resp, "GET")
                .status,
            ParseStatus::kComplete);
  EXPECT_FALSE(mustCloseClient(true, false, *resp));
  EXPECT_TRUE(mustCloseClient(true, true, *resp)) << "HTTP/1.0 cannot read chunked";
  EXPECT_TRUE(mustCloseClient(false, false, *resp));
  ASSERT_EQ(parseResponseHead("HTTP/1.1 200 OK\r\n\r\n", *resp, "GET").status,
            ParseStatus::kComplete);
  EXPECT_TRUE(mustCloseClient(true, false, *resp)) << "close-delimited body";
}

TEST(ReuseRules, UpstreamReuse) {
  auto resp = newResponse();
  auto reusable = [&](const char* raw, std::string_view method = "GET") {
    EXPECT_EQ(parseResponseHead(raw, *resp, method).status, ParseStatus::kComplete) << raw;
    return upstreamReusable(*resp);
  };
  EXPECT_TRUE(reusable("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(reusable("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(reusable("HTTP/1.1 200 OK\r\n\r\n")) << "close-delimited";
  EXPECT_FALSE(reusable("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"));
  EXPECT_TRUE(reusable("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(reusable("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"));
}

TEST(Methods, IdempotentPerRfc9110) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) {
    EXPECT_TRUE(isIdempotent(m)) << m;
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get"}) {
    EXPECT_FALSE(isIdempotent(m)) << m;
  }
}

}  // namespace
}  // namespace sluice::http
