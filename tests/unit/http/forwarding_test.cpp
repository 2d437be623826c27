// The edge rules of http/rewrite: trusted forwarding headers, X-Real-IP, '_' names, the Upgrade
// allow-list and the 101 check, and response framing (1xx/204/304, several Transfer-Encoding
// fields, de-chunking for HTTP/1.0 clients).
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "http/rewrite.hpp"
#include "test_support.hpp"

namespace sluice::http {
namespace {

using testing::newRequest;
using testing::newResponse;

// Trusted proxies for these tests: 10.0.0.0/8 and 2001:db8::/32 (by prefix, enough here).
bool trustedTestRange(const void*, std::string_view a) {
  return a.starts_with("10.") || a.starts_with("2001:db8:");
}
const AddressPredicate kTrusted{&trustedTestRange, nullptr};

std::string upstream(const std::string& raw, Forwarding fwd) {
  auto req = newRequest();
  EXPECT_EQ(parseRequestHead(raw, *req).status, ParseStatus::kComplete) << raw;
  std::string out;
  std::string scratch;
  buildUpstreamHead(*req, "/p", fwd, out, scratch);
  return out;
}

Forwarding trustedPeer(std::string_view peer = "10.1.1.1") {
  return Forwarding{.client_ip = peer,
                    .proto = "https",
                    .port = "443",
                    .trusted_peer = true,
                    .trusted = kTrusted};
}

TEST(TrustedForwarding, ATrustedPeersFieldsAreKeptAndExtended) {
  const std::string head = upstream(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.9, 10.0.0.2\r\n"
      "X-Forwarded-For: 10.0.0.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop.example\r\n"
      "X-Forwarded-Port: 8443\r\nX-Forwarded-Prefix: /shop\r\nForwarded: for=198.51.100.9\r\n"
      "X-Real-IP: 6.6.6.6\r\nX-Original-URL: /admin\r\n\r\n",
      trustedPeer());
  EXPECT_EQ(head,
            "GET /p HTTP/1.1\r\nHost: a\r\nX-Forwarded-Prefix: /shop\r\n"
            "Forwarded: for=198.51.100.9\r\n"
            "X-Forwarded-For: 198.51.100.9, 10.0.0.2, 10.0.0.3, 10.1.1.1\r\n"
            "X-Real-IP: 198.51.100.9\r\nX-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: shop.example\r\nX-Forwarded-Port: 8443\r\n\r\n");
}

TEST(TrustedForwarding, TheAgentsValuesFillWhatATrustedPeerLeftOut) {
  const std::string head = upstream("GET / HTTP/1.1\r\nHost: a:8080\r\n\r\n", trustedPeer());
  EXPECT_EQ(head,
            "GET /p HTTP/1.1\r\nHost: a:8080\r\nX-Forwarded-For: 10.1.1.1\r\n"
            "X-Real-IP: 10.1.1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a:8080\r\n"
            "X-Forwarded-Port: 443\r\n\r\n");
}

TEST(TrustedForwarding, OnlyTheFirstForwardedProtoHostAndPortCount) {
  const std::string head = upstream(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n\r\n",
      trustedPeer());
  EXPECT_NE(head.find("X-Forwarded-Proto: https\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("X-Forwarded-Proto: http\r\n"), std::string::npos) << head;
}

TEST(TrustedForwarding, AnUntrustedPeerGetsTheAgentsPort) {
  Forwarding fwd{.client_ip = "192.0.2.7", .port = "80"};
  const std::string head =
      upstream("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Port: 1\r\n\r\n", fwd);
  EXPECT_NE(head.find("X-Forwarded-Port: 80\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("X-Forwarded-Port: 1\r\n"), std::string::npos) << head;
}

TEST(TrustedForwarding, RealClientAddressSkipsTrustedHopsFromTheRight) {
  EXPECT_EQ(realClientAddress("", "10.1.1.1", kTrusted), "10.1.1.1");
  EXPECT_EQ(realClientAddress("203.0.113.5", "10.1.1.1", kTrusted), "203.0.113.5");
  EXPECT_EQ(realClientAddress("6.6.6.6, 203.0.113.5, 10.0.0.2", "10.1.1.1", kTrusted),
            "203.0.113.5")
      << "a client cannot choose its X-Real-IP by prepending";
  EXPECT_EQ(realClientAddress("10.0.0.9, 10.0.0.2", "10.1.1.1", kTrusted), "10.0.0.9")
      << "all trusted: the leftmost";
  EXPECT_EQ(realClientAddress("203.0.113.5:4711, [2001:db8::1]:443", "10.1.1.1", kTrusted),
            "203.0.113.5");
  EXPECT_EQ(realClientAddress("2001:db9::5,2001:db8::7", "10.1.1.1", kTrusted), "2001:db9::5");
  EXPECT_EQ(realClientAddress("203.0.113.5, , 10.0.0.2", "10.1.1.1", kTrusted), "203.0.113.5");
  // Not an address: the walk stops at the nearest hop a trusted proxy vouched for.
  EXPECT_EQ(realClientAddress("unknown, 10.0.0.2", "10.1.1.1", kTrusted), "10.0.0.2");
  EXPECT_EQ(realClientAddress("10.0.0.2, _hidden", "10.1.1.1", kTrusted), "10.1.1.1");
  EXPECT_EQ(realClientAddress("1.2.3.04", "10.1.1.1", kTrusted), "10.1.1.1");
  EXPECT_EQ(realClientAddress("[1.2.3.4]", "10.1.1.1", kTrusted), "10.1.1.1");
  EXPECT_EQ(realClientAddress("1.2.3.4:99999x", "10.1.1.1", kTrusted), "10.1.1.1");
  // No predicate: only the peer itself is trusted.
  EXPECT_EQ(realClientAddress("10.0.0.9, 10.0.0.2", "10.1.1.1", AddressPredicate{}), "10.0.0.2");
}

TEST(HeaderNames, NamesWithUnderscoresAreDropped) {
  const std::string head = upstream(
      "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.1.1.1\r\nX-Auth_User: admin\r\n"
      "_: x\r\nX-Auth-User: kept\r\n\r\n",
      Forwarding{.client_ip = "192.0.2.7"});
  EXPECT_EQ(head.find('_'), std::string::npos) << head;
  EXPECT_NE(head.find("X-Auth-User: kept\r\n"), std::string::npos) << head;
  EXPECT_NE(upstream("GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.1.1.1\r\n\r\n", trustedPeer())
                .find("X-Forwarded-For: 10.1.1.1\r\n"),
            std::string::npos)
      << "not even a trusted peer's";
}

TEST(Upgrade, AllowListDecidesWhatIsForwarded) {
  EXPECT_TRUE(upgradeListAllowed("websocket", kDefaultUpgradeProtocols));
  EXPECT_TRUE(upgradeListAllowed("WebSocket", kDefaultUpgradeProtocols));
  EXPECT_TRUE(upgradeListAllowed("h2c, websocket", kDefaultUpgradeProtocols));
  EXPECT_FALSE(upgradeListAllowed("h2c", kDefaultUpgradeProtocols));
  EXPECT_FALSE(upgradeListAllowed("websockets", kDefaultUpgradeProtocols));
  EXPECT_FALSE(upgradeListAllowed("", kDefaultUpgradeProtocols));
  EXPECT_FALSE(upgradeListAllowed(" , ", kDefaultUpgradeProtocols));
  EXPECT_FALSE(upgradeListAllowed("websocket", ""));
  EXPECT_TRUE(upgradeListAllowed("HTTP/2.0", "websocket, http"));
  EXPECT_TRUE(upgradeListAllowed("h2c", " websocket ,h2c"));
}

TEST(Upgrade, ADisallowedUpgradeIsForwardedAsAPlainRequest) {
  auto req = newRequest();
  ASSERT_EQ(parseRequestHead("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                             "Upgrade: h2c\r\nHTTP2-Settings: x\r\n\r\n",
                             *req)
                .status,
            ParseStatus::kComplete);
  EXPECT_TRUE(req->upgrade);
  EXPECT_FALSE(upgradeAllowed(*req, kDefaultUpgradeProtocols));
  EXPECT_TRUE(upgradeAllowed(*req, "h2c"));
  std::string out;
  std::string scratch;
  buildUpstreamHead(*req, "/ws", Forwarding{.client_ip = "192.0.2.7"}, out, scratch);
  EXPECT_EQ(out.find("Upgrade:"), std::string::npos) << out;
  EXPECT_EQ(out.find("Connection:"), std::string::npos) << out;
  buildUpstreamHead(*req, "/ws", Forwarding{.client_ip = "192.0.2.7", .upgrade_protocols = "h2c"},
                    out, scratch);
  EXPECT_NE(out.find("Connection: upgrade\r\nUpgrade: h2c\r\n"), std::string::npos) << out;
}

TEST(Upgrade, OnlyTheAllowedProtocolsOfTheListAreForwarded) {
  auto req = newRequest();
  ASSERT_EQ(parseRequestHead("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
                             "Upgrade: h2c, WebSocket\r\nUpgrade: foo/2\r\n\r\n",
                             *req)
                .status,
            ParseStatus::kComplete);
  std::string out;
  std::string scratch;
  buildUpstreamHead(*req, "/ws", Forwarding{.client_ip = "192.0.2.7"}, out, scratch);
  EXPECT_NE(out.find("Upgrade: WebSocket\r\n"), std::string::npos) << out;
  buildUpstreamHead(*req, "/ws",
                    Forwarding{.client_ip = "192.0.2.7", .upgrade_protocols = "foo,websocket"}, out,
                    scratch);
  EXPECT_NE(out.find("Upgrade: WebSocket, foo/2\r\n"), std::string::npos) << out;
}

TEST(Upgrade, AnUpgradeWithoutConnectionUpgradeIsNoUpgrade) {
  auto req = newRequest();
  ASSERT_EQ(
      parseRequestHead("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", *req).status,
      ParseStatus::kComplete);
  EXPECT_FALSE(upgradeAllowed(*req, kDefaultUpgradeProtocols));
}

TEST(Upgrade, A101MustNameAProtocolThatWasAskedFor) {
  EXPECT_TRUE(upgradeListAccepted("websocket", "websocket", "websocket"));
  EXPECT_TRUE(upgradeListAccepted("WebSocket", "websocket", "websocket"));
  EXPECT_TRUE(upgradeListAccepted("h2c, websocket", "websocket", "WEBSOCKET"));
  EXPECT_FALSE(upgradeListAccepted("websocket", "websocket", "h2c")) << "not asked for";
  EXPECT_FALSE(upgradeListAccepted("h2c, websocket", "websocket", "h2c")) << "not allowed";
  EXPECT_FALSE(upgradeListAccepted("websocket", "websocket", "")) << "a 101 must say";
  EXPECT_FALSE(upgradeListAccepted("websocket", "websocket", "websocket, h2c"));
  EXPECT_TRUE(upgradeListAccepted("foo/2", "foo", "foo/2"));
  EXPECT_TRUE(upgradeListAccepted("foo", "foo", "foo/2")) << "no version asked";
  EXPECT_FALSE(upgradeListAccepted("foo/2", "foo", "foo/3"));
}

TEST(Upgrade, A101IsCheckedAgainstTheRequestHead) {
  auto req = newRequest();
  ASSERT_EQ(parseRequestHead("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n",
                             *req)
                .status,
            ParseStatus::kComplete);
  auto resp = newResponse();
  const auto accepted = [&](const char* raw, std::string_view allowed = "websocket") {
    EXPECT_EQ(parseResponseHead(raw, *resp, "GET").status, ParseStatus::kComplete) << raw;
    return upgradeAccepted(*req, allowed, *resp);
  };
  EXPECT_TRUE(
      accepted("HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"));
  EXPECT_FALSE(accepted("HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"));
  EXPECT_FALSE(accepted("HTTP/1.1 101 Switching\r\nConnection: upgrade\r\n\r\n"));
  EXPECT_FALSE(accepted("HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n\r\n"));
  EXPECT_FALSE(accepted("HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n", "h2c"));
  EXPECT_FALSE(accepted("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n"));
}

TEST(Upgrade, AnnotationValues) {
  EXPECT_TRUE(validUpgradeProtocols("websocket"));
  EXPECT_TRUE(validUpgradeProtocols("websocket, h2c"));
  EXPECT_TRUE(validUpgradeProtocols(" websocket "));
  EXPECT_FALSE(validUpgradeProtocols(""));
  EXPECT_FALSE(validUpgradeProtocols("websocket,"));
  EXPECT_FALSE(validUpgradeProtocols("web socket"));
  EXPECT_FALSE(validUpgradeProtocols("HTTP/2.0"));
}

std::string clientHead(const std::string& raw, ClientResponse client,
                       std::string_view method = "GET") {
  auto resp = newResponse();
  EXPECT_EQ(parseResponseHead(raw, *resp, method).status, ParseStatus::kComplete) << raw;
  std::string out;
  buildResponseHead(*resp, client, out);
  return out;
}

TEST(ResponseFraming, NoTransferEncodingOn1xx204And304) {
  EXPECT_EQ(clientHead("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n", {}),
            "HTTP/1.1 204 No Content\r\nX: 1\r\n\r\n");
  EXPECT_EQ(clientHead("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", {}),
            "HTTP/1.1 304 Not Modified\r\n\r\n");
  EXPECT_EQ(clientHead("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", {}),
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n")
      << "a 304's Content-Length describes the entity";
  EXPECT_EQ(clientHead("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", {.close = true}),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(
      clientHead("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n",
                 {.close = true, .http10 = true}),
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n")
      << "no framing and no Connection on an interim response";
  EXPECT_EQ(clientHead("HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n\r\n", {}),
            "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST(ResponseFraming, SeveralTransferEncodingFieldsAreSentAsOne) {
  EXPECT_EQ(clientHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nServer: s\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n",
                       {}),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nServer: s\r\n\r\n");
  EXPECT_EQ(clientHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: br\r\n"
                       "Connection: close\r\n\r\n",
                       {.close = true}),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, br\r\nConnection: close\r\n\r\n")
      << "close-delimited with codings";
}

TEST(ResponseFraming, AnHttp10ClientGetsTheBodyDechunkedAndClosed) {
  auto resp = newResponse();
  ASSERT_EQ(parseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n",
                              *resp, "GET")
                .status,
            ParseStatus::kComplete);
  EXPECT_TRUE(dechunkForClient(*resp, true));
  EXPECT_FALSE(dechunkForClient(*resp, false));
  EXPECT_TRUE(mustCloseClient(true, true, *resp));
  std::string out;
  buildResponseHead(*resp, ClientResponse{.http10 = true, .dechunk = true}, out);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX: 1\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(parseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", *resp, "GET").status,
            ParseStatus::kComplete);
  EXPECT_FALSE(dechunkForClient(*resp, true)) << "only chunked bodies";
  ASSERT_EQ(
      parseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", *resp, "HEAD")
          .status,
      ParseStatus::kComplete);
  EXPECT_FALSE(dechunkForClient(*resp, true)) << "no body to de-chunk";
}

}  // namespace
}  // namespace sluice::http
