// HTTP/1.1 proxying behaviour through the real agent: keep-alive, bodies, pipelining, HEAD,
// Expect, 1xx, Upgrade, error statuses and timeouts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "support/raw_backend.hpp"

namespace sluice::test {
namespace {

std::string metric(std::uint16_t admin_port, const std::string& prefix) {
  std::string text = httpGet(admin_port, "/metrics");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix + " ", 0) == 0) {
      return line.substr(prefix.size() + 1);
    }
  }
  return "";
}

class Proxy : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    backend_ = new EchoBackend("web");
    manifests_ = new TempDir();
    manifests_->write(
        "a.yaml", ingressClassYaml() + "---\n" +
                      serviceYaml("web", 80, "http", {{"127.0.0.1", backend_->port()}}) + "---\n" +
                      ingressYaml("web", {{"", {{"/", "Prefix", "web", "http"}}}}));
    agent_ = new Agent(
        manifests_->path(),
        {{"--upstream-response-timeout", "1s", "--header-timeout", "1s", "--max-request-body",
          "10000000", "--max-header-bytes", "16384", "--trusted-proxies", "127.0.0.1/32"},
         2});
  }
  static void TearDownTestSuite() {
    delete agent_;
    delete manifests_;
    delete backend_;
  }
  static EchoBackend* backend_;
  static TempDir* manifests_;
  static Agent* agent_;
};
EchoBackend* Proxy::backend_ = nullptr;
TempDir* Proxy::manifests_ = nullptr;
Agent* Proxy::agent_ = nullptr;

TEST_F(Proxy, KeepAliveServesManyRequestsOnOneConnection) {
  Connection c(agent_->port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.send("GET /n/" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n"));
    auto r = c.read();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_FALSE(r->closed);
    EXPECT_EQ(r->json().as_object().at("path").as_string(), "/n/" + std::to_string(i));
  }
}

TEST_F(Proxy, PipelinedRequestsAreAnsweredInOrder) {
  Connection c(agent_->port());
  std::string batch;
  for (int i = 0; i < 10; ++i) {
    batch += "GET /p/" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
  }
  batch += "POST /p/body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  batch += "GET /p/last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  ASSERT_TRUE(c.send(batch));
  for (int i = 0; i < 10; ++i) {
    auto r = c.read();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->json().as_object().at("path").as_string(), "/p/" + std::to_string(i));
  }
  auto post = c.read();
  ASSERT_TRUE(post);
  EXPECT_EQ(post->json().as_object().at("body_bytes").to_number<int>(), 5);
  auto last = c.read();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->json().as_object().at("path").as_string(), "/p/last");
  EXPECT_TRUE(last->closed);
  EXPECT_TRUE(c.waitClosed());
}

TEST_F(Proxy, LargeBodiesStreamBothWaysIntact) {
  std::string body(8 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>((i * 131) ^ (i >> 9));
  }
  auto r = request(agent_->port(), "PUT", "a", "/upload", "", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->json().as_object().at("body_sha256").as_string(), sha256Hex(body));

  auto big = request(agent_->port(), "GET", "a", "/bytes/5000000");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->body.size(), 5000000u);
  auto chunked = request(agent_->port(), "GET", "a", "/chunked/3000000");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->header("Transfer-Encoding").value_or(""), "chunked");
  EXPECT_EQ(chunked->body, std::string(3000000, 'y'));
}

TEST_F(Proxy, ChunkedRequestBodyIsForwardedWithItsFraming) {
  Connection c(agent_->port());
  std::string req = "POST /chunky HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string payload;
  for (int i = 1; i <= 50; ++i) {
    std::string part(static_cast<std::size_t>(i * 1000), static_cast<char>('a' + i % 26));
    payload += part;
    char size[16];
    std::snprintf(size, sizeof size, "%x", static_cast<unsigned>(part.size()));
    req += std::string(size) + ";ext=1\r\n" + part + "\r\n";
  }
  req += "0\r\nX-Trailer: yes\r\n\r\n";
  ASSERT_TRUE(c.send(req));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->json().as_object().at("body_sha256").as_string(), sha256Hex(payload));
  // The connection stays usable after a chunked body.
  ASSERT_TRUE(c.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto r2 = c.read();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->json().as_object().at("path").as_string(), "/after");
}

TEST_F(Proxy, HeadHasNoBodyButKeepsLength) {
  Connection c(agent_->port());
  ASSERT_TRUE(c.send("HEAD /bytes/1234 HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto r = c.read(true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Length").value_or(""), "1234");
  EXPECT_TRUE(r->body.empty());
  ASSERT_TRUE(c.send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto r2 = c.read();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->json().as_object().at("path").as_string(), "/again");
}

TEST_F(Proxy, LocalRepliesToHeadHaveNoBody) {
  // An error reply to HEAD must not carry its body, or the client reads it as the next response.
  Connection c(agent_->port());
  ASSERT_TRUE(c.send("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto first = c.read(true);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  // Now a route-less HEAD on another agent path: 413 from the limit, answered by the agent.
  ASSERT_TRUE(c.send("HEAD /big HTTP/1.1\r\nHost: a\r\nContent-Length: 20000000\r\n\r\n"));
  auto local = c.read(true);
  ASSERT_TRUE(local);
  EXPECT_EQ(local->status, 413);
  EXPECT_TRUE(local->body.empty());
  EXPECT_EQ(c.readAll(300ms), "") << "no body bytes may follow a reply to HEAD";
}

TEST_F(Proxy, MultipleForwardedForFieldsFromATrustedPeerAreJoined) {
  auto r = request(agent_->port(), "GET", "a", "/xff",
                   "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 198.51.100.2\r\n");
  ASSERT_TRUE(r);
  std::string xff;
  const auto echo = r->json();
  for (const auto& kv : echo.as_object().at("headers").as_array()) {
    if (kv.as_array()[0].as_string() == "X-Forwarded-For") {
      xff = std::string(kv.as_array()[1].as_string());
    }
  }
  EXPECT_EQ(xff, "198.51.100.1, 198.51.100.2, 127.0.0.1");
}

TEST_F(Proxy, ExpectContinueGetsA100ThenTheBody) {
  Connection c(agent_->port());
  ASSERT_TRUE(
      c.send("POST /expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
             "Content-Length: 11\r\n\r\n"));
  std::string interim;
  for (int i = 0; i < 100 && interim.find("\r\n\r\n") == std::string::npos; ++i) {
    interim += c.readAll(20ms);
  }
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.send("hello world"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->json().as_object().at("body_bytes").to_number<int>(), 11);
}

TEST_F(Proxy, ExpectContinueOverLimitIsRejectedBeforeTheBody) {
  Connection c(agent_->port());
  ASSERT_TRUE(
      c.send("POST /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
             "Content-Length: 20000000\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(r->closed);
}

TEST_F(Proxy, InterimResponsesAreRelayed) {
  Connection c(agent_->port());
  ASSERT_TRUE(c.send("GET /early-hints HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string raw;
  for (int i = 0; i < 200 && raw.find("\"service\"") == std::string::npos; ++i) {
    raw += c.readAll(20ms);
  }
  EXPECT_EQ(raw.rfind("HTTP/1.1 103 Early Hints\r\n", 0), 0u) << raw.substr(0, 80);
  EXPECT_NE(raw.find("HTTP/1.1 200 OK\r\n"), std::string::npos);
}

TEST_F(Proxy, UpgradeTurnsTheConnectionIntoATunnel) {
  Connection c(agent_->port());
  ASSERT_TRUE(
      c.send("GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
             "Upgrade: websocket\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 101);
  EXPECT_EQ(r->header("Upgrade").value_or(""), "websocket");
  for (int i = 0; i < 50; ++i) {
    std::string msg = "frame-" + std::to_string(i);
    ASSERT_TRUE(c.send(msg));
    std::string got;
    for (int k = 0; k < 100 && got.size() < msg.size(); ++k) {
      got += c.readAll(10ms);
    }
    EXPECT_EQ(got, msg);
  }
  // Half-close travels through: our FIN reaches the backend, whose FIN comes back.
  c.shutdownWrite();
  EXPECT_TRUE(c.waitClosed(5s));
}

TEST_F(Proxy, UpstreamTimeoutIs504) {
  auto r = request(agent_->port(), "GET", "a", "/delay/3000");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(r->body, "upstream timeout\n");
}

TEST_F(Proxy, SlowHeadersGet408AndClose) {
  Connection c(agent_->port());
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: a\r\n"));  // never finished
  auto r = c.read(false, 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(c.waitClosed());
}

TEST_F(Proxy, LimitsGive413And431) {
  auto r = request(agent_->port(), "POST", "a", "/x", "", std::string(10000001, 'b'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  auto h = request(agent_->port(), "GET", "a", "/x", "X-Big: " + std::string(20000, 'h') + "\r\n");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 431);
  EXPECT_TRUE(h->closed);
}

TEST_F(Proxy, BackendStatusesPassThrough) {
  for (int status : {201, 204, 302, 404, 500, 503}) {
    auto r = request(agent_->port(), "GET", "a", "/status/" + std::to_string(status));
    ASSERT_TRUE(r) << status;
    EXPECT_EQ(r->status, status);
  }
}

TEST_F(Proxy, CloseDelimitedResponseEndsTheClientConnection) {
  Connection c(agent_->port());
  ASSERT_TRUE(c.send("GET /close/1000 HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, std::string(1000, 'z'));
  EXPECT_TRUE(r->closed);
}

TEST_F(Proxy, Http10ClientGetsClosedConnectionByDefault) {
  Connection c(agent_->port());
  ASSERT_TRUE(c.send("GET /old HTTP/1.0\r\n\r\n"));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(c.waitClosed());
}

TEST_F(Proxy, MetricsCountRequestsByRouteAndClass) {
  ASSERT_TRUE(request(agent_->port(), "GET", "a", "/counted"));
  // The request is counted once its response is out, which the client may see first.
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text = httpGet(agent_->adminPort(), "/metrics");
    if (text.find("code=\"2xx\"}") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(text.find("sluice_requests_total{route="), std::string::npos);
  EXPECT_NE(text.find("code=\"2xx\"}"), std::string::npos);
  EXPECT_NE(text.find("sluice_upstream_latency_seconds_bucket{cluster=\"default/web:http\""),
            std::string::npos);
  EXPECT_NE(text.find("sluice_active_connections "), std::string::npos);
  EXPECT_NE(text.find("sluice_config_generation 1"), std::string::npos);
  EXPECT_NE(text.find("sluice_rejected_objects 0"), std::string::npos);
}

TEST(Upstream, FailedConnectRetriesAnotherEndpointAndEjects) {
  EchoBackend live("svc");
  const std::uint16_t dead = freePort();  // nothing listens there
  TempDir dir;
  dir.write("a.yaml",
            ingressClassYaml() + "---\n" +
                serviceYaml("svc", 80, "", {{"127.0.0.1", dead}, {"127.0.0.1", live.port()}}) +
                "---\n" + ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{}, 1});
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    auto r = request(agent.port(), "GET", "x", "/");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << i;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const int failures = std::stoi(metric(
      agent.adminPort(), "sluice_upstream_connect_failures_total{cluster=\"default/svc:80\"}"));
  // Ejection keeps the dead endpoint out after its first failure for a back-off of at least
  // 1 s: at most one more try per second the loop took (it takes well under one when quiet).
  EXPECT_GE(failures, 1);
  EXPECT_LE(failures, 1 + std::chrono::duration_cast<std::chrono::seconds>(elapsed).count());
}

TEST(Upstream, APooledConnectionTheBackendClosesIsDroppedBeforeReuse) {
  EchoBackend live("svc");
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", live.port()}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{}, 1});
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(request(agent.port(), "GET", "x", "/then-close")->status, 200);
    // The backend's FIN reaches the idle pooled connection, whose watch closes it.
    ASSERT_TRUE(eventually([&] {
      return metric(agent.adminPort(), "sluice_upstream_idle_closed_total") ==
             std::to_string(i + 1);
    }));
    auto r = request(agent.port(), "GET", "x", "/next");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << i;
  }
  EXPECT_EQ(metric(agent.adminPort(), "sluice_upstream_retries_total{cluster=\"default/svc:80\"}"),
            "0");
  EXPECT_EQ(metric(agent.adminPort(),
                   "sluice_upstream_connect_failures_total{cluster=\"default/svc:80\"}"),
            "0");
}

// The keep-alive race: the backend closes a reused connection right as the next request arrives
// (here: it reads the request and closes without a word). Nothing of the request was consumed
// from the client, so it is sent again on a new connection, and the endpoint is not blamed.
TEST(Upstream, ARequestLostToTheKeepAliveRaceIsRetriedTransparently) {
  std::atomic<int> connections{0};
  RawBackend backend([&](Socket& s) {
    const int n = ++connections;
    for (int served = 0;; ++served) {
      auto head = recvUntil(s.fd(), "\r\n\r\n", 5s);
      if (!head || (n == 1 && served == 1)) {
        return;  // the first connection dies with its second request
      }
      sendAll(s.fd(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
  });
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", backend.port()}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{}, 1});
  ASSERT_EQ(request(agent.port(), "GET", "x", "/one")->status, 200);
  auto r = request(agent.port(), "GET", "x", "/two");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
  EXPECT_EQ(connections.load(), 2);
  EXPECT_EQ(metric(agent.adminPort(), "sluice_upstream_retries_total{cluster=\"default/svc:80\"}"),
            "1");
  EXPECT_EQ(metric(agent.adminPort(),
                   "sluice_upstream_connect_failures_total{cluster=\"default/svc:80\"}"),
            "0");
}

TEST(Upstream, ConnectTimeoutIs504) {
  // A listener whose accept queue is full drops further SYNs: connects hang, as to a dead host.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 0), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::uint16_t port = ntohs(addr.sin_port);
  Connection filler(port);  // backlog 0 holds one connection; the next SYNs are dropped
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", port}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{"--upstream-connect-timeout", "300ms"}, 1});
  const auto start = std::chrono::steady_clock::now();
  auto r = request(agent.port(), "GET", "x", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  ::close(lfd);
}

TEST(Upstream, AllEndpointsDownIs502) {
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", freePort()}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{}, 1});
  auto r = request(agent.port(), "GET", "x", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->body, "upstream failure\n");
}

TEST(Upstream, KilledBackendGives502NotAHang) {
  TempDir dir;
  auto backend = std::make_unique<EchoBackend>("svc");
  const std::uint16_t port = backend->port();
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("svc", 80, "", {{"127.0.0.1", port}}) + "---\n" +
                          ingressYaml("a", {}, "svc", "80"));
  Agent agent(dir.path(), {{}, 1});
  ASSERT_EQ(request(agent.port(), "GET", "x", "/")->status, 200);
  backend->kill();  // pooled connections to it are now dead
  std::this_thread::sleep_for(100ms);
  auto r = request(agent.port(), "GET", "x", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
}

}  // namespace
}  // namespace sluice::test
