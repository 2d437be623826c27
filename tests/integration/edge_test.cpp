// The edge against the real agent: which forwarding headers a backend sees from trusted and
// untrusted peers, the PROXY protocol, Upgrade's allow-list, path spelling, response framing for
// HTTP/1.0 clients, request trailers, and a hostile backend (stray bytes on an idle pooled
// connection, a 101 nobody asked for, a flood of interim responses, Transfer-Encoding on a 204).
#include <arpa/inet.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "support/raw_backend.hpp"

namespace sluice::test {
namespace {

std::map<std::string, std::string> echoedHeaders(const Response& r) {
  std::map<std::string, std::string> h;
  const boost::json::value v = r.json();  // kept: the loop below walks into it
  for (const auto& kv : v.as_object().at("headers").as_array()) {
    std::string k(kv.as_array()[0].as_string());
    std::transform(k.begin(), k.end(), k.begin(), ::tolower);
    h[k] = std::string(kv.as_array()[1].as_string());
  }
  return h;
}

// A POST with a chunked body (request() would add a Content-Length), on a new connection.
std::optional<Response> postChunked(std::uint16_t port, const std::string& path,
                                    const std::string& chunked_body) {
  Connection c(port);
  c.send("POST " + path + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
         chunked_body);
  return c.read();
}

std::string manifests(std::uint16_t web, std::uint16_t admin = 0,
                      const std::string& web_annotations = "") {
  std::string m = ingressClassYaml() + "---\n" +
                  serviceYaml("web", 80, "http", {{"127.0.0.1", web}}, "default", web_annotations);
  std::vector<Path> paths{{"/", "Prefix", "web", "http"}};
  if (admin != 0) {
    m += "---\n" + serviceYaml("admin", 80, "http", {{"127.0.0.1", admin}});
    paths.insert(paths.begin(), {"/admin", "Prefix", "admin", "http"});
  }
  return m + "---\n" + ingressYaml("web", {{"", paths}});
}

// ---- trusted headers ---------------------------------------------------------------------------

class Forwarding : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    web_ = new EchoBackend("web");
    dir_ = new TempDir();
    dir_->write("a.yaml", manifests(web_->port()));
    agent_ = new Agent(dir_->path(), {{"--trusted-proxies", "127.0.0.1/32"}, 1});
  }
  static void TearDownTestSuite() {
    delete agent_;
    delete dir_;
    delete web_;
  }
  // One request from `source`, with `extra` header lines; the headers the backend saw.
  static std::map<std::string, std::string> seen(const std::string& source,
                                                 const std::string& extra) {
    Connection c(agent_->port(), "127.0.0.1", source);
    EXPECT_TRUE(c.send("GET /h HTTP/1.1\r\nHost: a.example\r\n" + extra + "\r\n"));
    auto r = c.read();
    EXPECT_TRUE(r);
    if (!r || r->status != 200) {
      return {};
    }
    return echoedHeaders(*r);
  }
  static EchoBackend* web_;
  static TempDir* dir_;
  static Agent* agent_;
};
EchoBackend* Forwarding::web_ = nullptr;
TempDir* Forwarding::dir_ = nullptr;
Agent* Forwarding::agent_ = nullptr;

constexpr const char* kSpoofed =
    "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n"
    "X-Forwarded-Port: 8443\r\nX-Forwarded-Prefix: /p\r\nX-Real-IP: 203.0.113.8\r\n"
    "Forwarded: for=203.0.113.9\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\n"
    "X_Auth_User: root\r\n";

TEST_F(Forwarding, AnUntrustedPeersForwardingFieldsAreReplacedByTheAgents) {
  auto h = seen("127.0.0.2", kSpoofed);
  EXPECT_EQ(h["x-forwarded-for"], "127.0.0.2");
  EXPECT_EQ(h["x-real-ip"], "127.0.0.2");
  EXPECT_EQ(h["x-forwarded-proto"], "http");
  EXPECT_EQ(h["x-forwarded-host"], "a.example");
  EXPECT_EQ(h["x-forwarded-port"], std::to_string(agent_->port()));
  for (const char* gone : {"x-forwarded-prefix", "forwarded", "x-original-url", "x-rewrite-url",
                           "x_auth_user", "x-auth-user"}) {
    EXPECT_EQ(h.count(gone), 0u) << gone;
  }
}

TEST_F(Forwarding, ATrustedPeersForwardingFieldsAreKeptAndExtended) {
  auto h = seen("127.0.0.1", kSpoofed);
  EXPECT_EQ(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
  EXPECT_EQ(h["x-real-ip"], "203.0.113.7") << "the rightmost untrusted address";
  EXPECT_EQ(h["x-forwarded-proto"], "https");
  EXPECT_EQ(h["x-forwarded-host"], "evil");
  EXPECT_EQ(h["forwarded"], "for=203.0.113.9");
  // Never from anyone: a backend could route on them or map the '_' onto '-'.
  for (const char* gone : {"x-original-url", "x-rewrite-url", "x_auth_user", "x-auth-user"}) {
    EXPECT_EQ(h.count(gone), 0u) << gone;
  }
}

// ---- PROXY protocol ----------------------------------------------------------------------------

class ProxyProtocol : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    web_ = new EchoBackend("web");
    dir_ = new TempDir();
    dir_->write("a.yaml", manifests(web_->port()));
    agent_ = new Agent(
        dir_->path(),
        {{"--trusted-proxies", "127.0.0.1/32", "--proxy-protocol", "--header-timeout", "2s"}, 1});
  }
  static void TearDownTestSuite() {
    delete agent_;
    delete dir_;
    delete web_;
  }
  static std::optional<Response> through(const std::string& source, const std::string& header) {
    Connection c(agent_->port(), "127.0.0.1", source);
    if (!c.send(header + "GET /pp HTTP/1.1\r\nHost: a\r\n\r\n")) {
      return std::nullopt;
    }
    return c.read(false, 5s);
  }
  static EchoBackend* web_;
  static TempDir* dir_;
  static Agent* agent_;
};
EchoBackend* ProxyProtocol::web_ = nullptr;
TempDir* ProxyProtocol::dir_ = nullptr;
Agent* ProxyProtocol::agent_ = nullptr;

TEST_F(ProxyProtocol, V1FromATrustedPeerGivesTheClientAddress) {
  auto r = through("127.0.0.1", "PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  auto h = echoedHeaders(*r);
  EXPECT_EQ(h["x-forwarded-for"], "198.51.100.7");
  EXPECT_EQ(h["x-real-ip"], "198.51.100.7");
}

TEST_F(ProxyProtocol, V2FromATrustedPeerGivesTheClientAddress) {
  std::string v2("\r\n\r\n\0\r\nQUIT\n", 12);
  v2 += '\x21';                      // version 2, PROXY
  v2 += '\x21';                      // AF_INET6, STREAM
  v2 += std::string("\x00\x24", 2);  // 36 bytes of addresses
  in6_addr src{};
  in6_addr dst{};
  ::inet_pton(AF_INET6, "2001:db8::7", &src);
  ::inet_pton(AF_INET6, "2001:db8::1", &dst);
  v2.append(reinterpret_cast<const char*>(&src), 16);
  v2.append(reinterpret_cast<const char*>(&dst), 16);
  v2 += std::string("\x9c\x40\x00\x50", 4);  // ports 40000, 80
  auto r = through("127.0.0.1", v2);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(echoedHeaders(*r)["x-forwarded-for"], "2001:db8::7");
}

TEST_F(ProxyProtocol, ATrustedPeerMayStillSpeakPlainHttp) {
  auto r = through("127.0.0.1", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ProxyProtocol, AnUntrustedPeerOrABadHeaderClosesTheConnection) {
  const double untrusted_before =
      metricValue(agent_->adminPort(), "sluice_proxy_protocol_total{result=\"untrusted\"}");
  EXPECT_FALSE(through("127.0.0.2", "PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n"));
  EXPECT_EQ(metricValue(agent_->adminPort(), "sluice_proxy_protocol_total{result=\"untrusted\"}"),
            untrusted_before + 1);
  EXPECT_FALSE(through("127.0.0.1", "PROXY TCP4 198.51.100.777 192.0.2.1 40000 80\r\n"));
  EXPECT_EQ(
      metricValue(agent_->adminPort(), "sluice_proxy_protocol_total{result=\"v1_bad_address\"}"),
      1);
  EXPECT_EQ(web_->requestsSeen(), web_->requestsSeen());
}

// ---- Upgrade allow-list ------------------------------------------------------------------------

TEST(Upgrades, OnlyAllowedProtocolsAreForwardedAndA101MustAnswerWhatWasAsked) {
  EchoBackend web("web");
  EchoBackend tools("tools");
  TempDir dir;
  dir.write("a.yaml",
            ingressClassYaml() + "---\n" +
                serviceYaml("web", 80, "http", {{"127.0.0.1", web.port()}}) + "---\n" +
                serviceYaml("tools", 80, "http", {{"127.0.0.1", tools.port()}}, "default",
                            "    sluice.dev/upgrade-protocols: \"echo, websocket\"\n") +
                "---\n" +
                ingressYaml("web", {{"web.example", {{"/", "Prefix", "web", "http"}}},
                                    {"tools.example", {{"/", "Prefix", "tools", "http"}}}}));
  Agent agent(dir.path(), {{}, 1});
  auto upgrade = [&](const std::string& host, const std::string& path, const std::string& proto) {
    Connection c(agent.port());
    EXPECT_TRUE(c.send("GET " + path + " HTTP/1.1\r\nHost: " + host +
                       "\r\nConnection: Upgrade\r\nUpgrade: " + proto + "\r\n\r\n"));
    return c.read(false, 5s);
  };
  auto ws = upgrade("web.example", "/upgrade", "websocket");
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->status, 101) << "websocket is allowed by default";
  // "echo" is not allowed for web: it goes as a plain request, without Upgrade.
  auto plain = upgrade("web.example", "/upgrade", "echo");
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 200);
  EXPECT_EQ(echoedHeaders(*plain).count("upgrade"), 0u);
  // The tools Service lists echo.
  auto echo = upgrade("tools.example", "/upgrade", "echo");
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->status, 101);
  EXPECT_EQ(echo->header("Upgrade").value_or(""), "echo");
  // A 101 naming a protocol that was not asked for is a bad response.
  auto wrong = upgrade("web.example", "/upgrade/wrong", "websocket");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 502);
}

// ---- paths -------------------------------------------------------------------------------------

TEST(Paths, RoutingCannotBeBypassedByPathSpelling) {
  EchoBackend web("web");
  EchoBackend admin("admin");
  TempDir dir;
  dir.write("a.yaml", manifests(web.port(), admin.port()));
  Agent agent(dir.path(), {{}, 1});
  auto get = [&](const std::string& path) { return request(agent.port(), "GET", "a", path); };
  // Merged slashes and dot-segments (after their ;parameters) route where the backend serves.
  for (const std::string p : {"//admin", "/public/..;/admin", "/x/../admin/", "/./admin"}) {
    auto r = get(p);
    ASSERT_TRUE(r) << p;
    EXPECT_EQ(served(r), "admin") << p;
    EXPECT_EQ(std::string(r->json().as_object().at("path").as_string()).substr(0, 6), "/admin")
        << p;
  }
  // Escaped slashes and backslashes are refused by default.
  for (const std::string p : {"/admin%2Fx", "/a%2fb", "/a%5Cb", "/a\\b"}) {
    auto r = get(p);
    ASSERT_TRUE(r) << p;
    EXPECT_EQ(r->status, 400) << p;
  }
  // %2F, %2f and %5C are escaped slashes; the raw backslash has its own reason.
  EXPECT_EQ(metricValue(agent.adminPort(),
                        "sluice_request_path_rejected_total{reason=\"escaped_slash\"}"),
            3);
  auto bad_host = request(agent.port(), "GET", "a%2eb", "/");
  ASSERT_TRUE(bad_host);
  EXPECT_EQ(bad_host->status, 400);
}

// ---- bodies and framing ------------------------------------------------------------------------

TEST(Framing, AnHttp10ClientGetsAChunkedBodyDechunkedAndClosed) {
  EchoBackend web("web");
  TempDir dir;
  dir.write("a.yaml", manifests(web.port()));
  Agent agent(dir.path(), {{}, 1});
  Connection c(agent.port());
  ASSERT_TRUE(c.send("GET /chunked/3000 HTTP/1.0\r\nHost: a\r\n\r\n"));
  const std::string raw = c.readAll(5s);
  const auto end = raw.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << raw.substr(0, 200);
  const std::string head = raw.substr(0, end);
  EXPECT_EQ(raw.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_EQ(head.find("Transfer-Encoding"), std::string::npos) << head;
  EXPECT_NE(head.find("Connection: close"), std::string::npos) << head;
  EXPECT_EQ(raw.size() - end - 4, 3000u) << "the payload alone, delimited by the close";
}

TEST(Framing, AChunkedBodyOverTheLimitIs413EvenWhenItArrivesLater) {
  EchoBackend web("web");
  TempDir dir;
  dir.write("a.yaml", manifests(web.port()));
  Agent agent(dir.path(), {{"--max-request-body", "1000"}, 1});
  {
    auto r = postChunked(agent.port(), "/up", "7d0\r\n" + std::string(2000, 'x') + "\r\n0\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413) << "in the head's packet";
  }
  Connection c(agent.port());
  ASSERT_TRUE(c.send("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(c.send("200\r\n" + std::string(512, 'x') + "\r\n"));
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(c.send("200\r\n" + std::string(512, 'x') + "\r\n0\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413) << "while streaming";
}

// A raw backend that answers each request by its path, for what a well-behaved one never does.
class Hostile : public ::testing::Test {
protected:
  void SetUp() override {
    backend_ = std::make_unique<RawBackend>([this](Socket& s) { serve(s); });
    dir_.write("a.yaml", manifests(backend_->port()));
    agent_ = std::make_unique<Agent>(dir_.path(), AgentOptions{{}, 1});
  }
  void TearDown() override {
    agent_.reset();
    done_ = true;
    backend_.reset();
  }
  // The end of the first whole request in `buf` (heads, and chunked bodies with trailers), or 0.
  static std::size_t messageEnd(const std::string& buf) {
    const auto head = buf.find("\r\n\r\n");
    if (head == std::string::npos) {
      return 0;
    }
    if (buf.substr(0, head).find("Transfer-Encoding: chunked") == std::string::npos) {
      return head + 4;
    }
    const auto last = buf.find("\r\n0\r\n", head + 2);
    if (last == std::string::npos) {
      return 0;
    }
    const auto end = buf.find("\r\n\r\n", last + 3);
    return end == std::string::npos ? 0 : end + 4;
  }
  void serve(Socket& s) {
    std::string buf;
    char chunk[16384];
    while (!done_) {
      std::size_t end = messageEnd(buf);
      if (end == 0) {
        const ssize_t n = ::recv(s.fd(), chunk, sizeof chunk, 0);
        if (n <= 0) {
          return;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      const std::string message = buf.substr(0, end);
      buf.erase(0, end);
      {
        std::lock_guard lock(mutex_);
        received_ += message;
      }
      if (!answer(s,
                  message.substr(message.find(' ') + 1, message.find(' ', message.find(' ') + 1) -
                                                            message.find(' ') - 1))) {
        return;
      }
    }
  }
  bool answer(Socket& s, const std::string& path) {
    if (path == "/stray") {
      if (!sendAll(s.fd(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) {
        return false;
      }
      std::this_thread::sleep_for(100ms);
      // Bytes nobody asked for, on a connection that is now idle in the agent's pool.
      return sendAll(s.fd(), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!");
    }
    if (path == "/unasked-101") {
      return sendAll(s.fd(),
                     "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\n\r\nraw bytes");
    }
    if (path == "/interim-flood") {
      std::string flood;
      for (int i = 0; i < 10'000; ++i) {
        flood += "HTTP/1.1 100 Continue\r\n\r\n";
      }
      return sendAll(s.fd(), flood + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 5s);
    }
    if (path == "/te-204") {
      return sendAll(s.fd(), "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n");
    }
    return sendAll(s.fd(), "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(path.size()) +
                               "\r\n\r\n" + path);
  }
  std::string received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::string received_;
  std::unique_ptr<RawBackend> backend_;
  TempDir dir_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(Hostile, StrayBytesOnAnIdlePooledConnectionNeverReachTheNextClient) {
  auto first = request(agent_->port(), "GET", "a", "/stray");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "ok");
  std::this_thread::sleep_for(300ms);  // the stray response lands on the idle connection
  for (int i = 0; i < 5; ++i) {
    auto next = request(agent_->port(), "GET", "a", "/next");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200);
    EXPECT_EQ(next->body, "/next") << "the stray response was served to another client";
  }
}

TEST_F(Hostile, A101NobodyAskedForIs502) {
  auto r = request(agent_->port(), "GET", "a", "/unasked-101");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->body.find("raw bytes"), std::string::npos);
}

TEST_F(Hostile, AFloodOfInterimResponsesIs502) {
  Connection c(agent_->port());
  ASSERT_TRUE(c.send("GET /interim-flood HTTP/1.1\r\nHost: a\r\n\r\n"));
  const std::string raw = c.readAll(5s);
  std::size_t relayed = 0;
  for (auto at = raw.find("100 Continue"); at != std::string::npos;
       at = raw.find("100 Continue", at + 1)) {
    ++relayed;
  }
  EXPECT_LE(relayed, 8u);
  EXPECT_NE(raw.find("HTTP/1.1 502"), std::string::npos) << raw.substr(0, 300);
  auto after = request(agent_->port(), "GET", "a", "/after");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

TEST_F(Hostile, A204NeverCarriesTransferEncodingToTheClient) {
  Connection c(agent_->port());
  ASSERT_TRUE(c.send("GET /te-204 HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_FALSE(r->header("Transfer-Encoding"));
  ASSERT_TRUE(c.send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto again = c.read();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, "/again") << "the client connection stays in sync";
}

TEST_F(Hostile, RequestTrailersWithHeaderMeaningAreDropped) {
  auto r = postChunked(agent_->port(), "/trailers",
                       "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nCookie: session=evil\r\n"
                       "Authorization: Basic eA==\r\nForwarded: for=evil\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const std::string got = received();
  const auto body = got.find("\r\n\r\n", got.find("POST /trailers"));
  ASSERT_NE(body, std::string::npos);
  const std::string rest = got.substr(body + 4);
  EXPECT_NE(rest.find("X-Checksum: abc"), std::string::npos) << rest;
  EXPECT_EQ(rest.find("Cookie"), std::string::npos) << rest;
  EXPECT_EQ(rest.find("Authorization"), std::string::npos) << rest;
  EXPECT_EQ(rest.find("evil"), std::string::npos) << rest;
}

}  // namespace
}  // namespace sluice::test
