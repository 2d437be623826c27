// TLS against the real agent: certificates chosen by SNI (exact, wildcard, default), plain HTTP
// redirected, HSTS, broken Secrets and the last good certificate, rotation under load, session
// resumption across workers, SNI passthrough with a ClientHello sent one byte per segment, and the
// handshake's limits. Clients are OpenSSL (tests/support/tls_client) and curl.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "support/test_pki.hpp"
#include "support/tls_client.hpp"

namespace sluice::test {
namespace {

constexpr const char* kDefaultCn = "Sluice Ingress default certificate";

// An Ingress with spec.tls for `tls_hosts` (Secret `secret`, "" = none) and a rule per host.
std::string tlsIngress(const std::string& name, const std::vector<std::string>& hosts,
                       const std::vector<std::string>& tls_hosts, const std::string& secret,
                       const std::string& annotations = "") {
  std::vector<Rule> rules;
  for (const auto& h : hosts) {
    rules.push_back({h, {{"/", "Prefix", "web", "http"}}});
  }
  std::string y =
      ingressYaml(name, rules, "", "", "sluice", "default", "2024-01-01T00:00:00Z", annotations);
  std::string tls = "  tls:\n  - hosts: [";
  for (std::size_t i = 0; i < tls_hosts.size(); ++i) {
    tls += (i ? ", \"" : "\"") + tls_hosts[i] + "\"";
  }
  tls += "]\n" + (secret.empty() ? std::string() : "    secretName: " + secret + "\n");
  y.replace(y.find("spec:\n"), 6, "spec:\n" + tls);
  return y;
}

class Tls : public ::testing::Test {
protected:
  void SetUp() override {
    ca_ = makeCertificate({.names = {"Sluice Test CA"}, .ca = true});
    a_ = makeCertificate({.names = {"a.test"}, .issuer = &ca_});
    w_ = makeCertificate({.names = {"*.w.test"}, .rsa = true});
  }
  std::string base() const {
    return ingressClassYaml() + "---\n" +
           serviceYaml("web", 80, "http", {{"127.0.0.1", web_.port()}});
  }
  std::string fp(const Pem& p) const { return fingerprint(p.cert); }
  // p.test passed through to the TLS backend on `port`; a.test terminated with a_.
  void writePassthrough(std::uint16_t port) {
    dir_.write("m.yaml", base() + "---\n" +
                             serviceYaml("tlsapp", 443, "https", {{"127.0.0.1", port}}) + "---\n" +
                             tlsSecretYaml("default", "a", a_) + "---\n" +
                             tlsIngress("i", {"a.test"}, {"a.test"}, "a") + "---\n" +
                             ingressYaml("p", {{"p.test", {{"/", "Prefix", "tlsapp", "https"}}}},
                                         "", "", "sluice", "default", "2024-01-01T00:00:00Z",
                                         "    sluice.dev/ssl-passthrough: \"true\"\n"));
  }

  EchoBackend web_{"web"};
  TempDir dir_;
  Pem ca_, a_, w_;
};

TEST_F(Tls, CertificateBySniExactWildcardThenDefault) {
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsSecretYaml("default", "w", w_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a") + "---\n" +
                           tlsIngress("j", {"x.w.test"}, {"*.w.test"}, "w"));
  Agent agent(dir_.path());
  auto cert = [&](const std::string& sni) {
    auto c = TlsClient::connect(agent.httpsPort(), {.sni = sni});
    return c ? c->peerFingerprint() : std::string("<no handshake>");
  };
  EXPECT_EQ(cert("a.test"), fp(a_));
  EXPECT_EQ(cert("A.TEST"), fp(a_));  // SNI is case-insensitive
  EXPECT_EQ(cert("x.w.test"), fp(w_));
  EXPECT_EQ(cert("y.w.test"), fp(w_));
  for (const char* other : {"y.x.w.test", "w.test", "unknown.test", ""}) {
    auto c = TlsClient::connect(agent.httpsPort(), {.sni = other});
    ASSERT_TRUE(c) << other;
    EXPECT_EQ(c->peerCommonName(), kDefaultCn) << other;
  }
  // The chain goes out with the leaf: a client that trusts only the CA verifies a.test.
  auto c = TlsClient::connect(agent.httpsPort(), {.sni = "a.test", .alpn = "http/1.1"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->alpn(), "http/1.1");
  const std::string r = c->get("a.test", "/hello");
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_NE(r.find("[\"X-Forwarded-Proto\", \"https\"]"), std::string::npos) << r;
  EXPECT_NE(r.find("[\"X-Forwarded-Port\", \"" + std::to_string(agent.httpsPort()) + "\"]"),
            std::string::npos)
      << r;
  EXPECT_GE(metricValue(agent.adminPort(), "sluice_tls_handshakes_total{result=\"ok\"}"), 9);
}

TEST_F(Tls, CurlAndOpensslVerifyTheChain) {
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  Agent agent(dir_.path());
  dir_.write("ca.pem", ca_.cert);
  const std::string port = std::to_string(agent.httpsPort());
  const std::string ca = (dir_.path() / "ca.pem").string();
  // curl offers h2 and http/1.1; it must get http/1.1 and a verified chain.
  Process curl(
      {"/usr/bin/curl", "-sS", "--http2", "--cacert", ca, "--resolve",
       "a.test:" + port + ":127.0.0.1", "-o", "/dev/null", "-w",
       "%{http_code} %{http_version} %{ssl_verify_result}", "https://a.test:" + port + "/x"},
      dir_.path() / "curl.log");
  ASSERT_EQ(curl.wait(10s), 0) << curl.output();
  EXPECT_EQ(curl.output(), "200 1.1 0");
  Process s_client({"/bin/sh", "-c",
                    "echo | openssl s_client -connect 127.0.0.1:" + port +
                        " -servername a.test -CAfile " + ca + " -verify_return_error"},
                   dir_.path() / "s_client.log");
  ASSERT_TRUE(s_client.wait(10s).has_value());
  EXPECT_NE(s_client.output().find("Verify return code: 0 (ok)"), std::string::npos)
      << s_client.output();
}

TEST_F(Tls, PlainHttpIsRedirectedUnlessTheIngressOptsOut) {
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a",
                                      "    sluice.dev/hsts: \"max-age=600; includeSubDomains\"\n") +
                           "---\n" +
                           tlsIngress("k", {"b.test"}, {"b.test"}, "a",
                                      "    sluice.dev/ssl-redirect: \"false\"\n"));
  Agent agent(dir_.path());
  auto r = request(agent.port(), "GET", "a.test", "/p/q?x=1&y=2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 308);
  EXPECT_EQ(r->header("location"),
            "https://a.test:" + std::to_string(agent.httpsPort()) + "/p/q?x=1&y=2");
  EXPECT_EQ(r->header("strict-transport-security"), std::nullopt);  // never over plain HTTP
  auto opted_out = request(agent.port(), "GET", "b.test", "/");
  ASSERT_TRUE(opted_out);
  EXPECT_EQ(opted_out->status, 200);
  auto c = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
  ASSERT_TRUE(c);
  const std::string tls = c->get("a.test", "/");
  EXPECT_EQ(statusOf(tls), 200);
  EXPECT_EQ(headerOf(tls, "strict-transport-security"), "max-age=600; includeSubDomains");
  EXPECT_EQ(metricValue(agent.adminPort(), "sluice_tls_redirects_total"), 1);
}

TEST_F(Tls, BrokenSecretsFallBackAndTheLastGoodCertificateStays) {
  const Pem other = makeCertificate({.names = {"b.test"}});
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsSecretYaml("default", "b", {other.cert, a_.key}) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a") + "---\n" +
                           tlsIngress("j", {"b.test"}, {"b.test"}, "b"));
  Agent agent(dir_.path());
  auto b = TlsClient::connect(agent.httpsPort(), {.sni = "b.test"});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->peerCommonName(), kDefaultCn);  // the key does not match: default certificate
  // a's Secret breaks: a.test keeps its last good certificate, and the agent says so.
  const std::uint64_t gen = agent.generation();
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", {a_.cert, other.key}) +
                           "---\n" + tlsSecretYaml("default", "b", {other.cert, a_.key}) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a") + "---\n" +
                           tlsIngress("j", {"b.test"}, {"b.test"}, "b"));
  std::string state;
  for (int i = 0; i < 100 && state.find("last good certificate") == std::string::npos; ++i) {
    std::this_thread::sleep_for(50ms);
    state = httpGet(agent.adminPort(), "/debug/state");
  }
  EXPECT_NE(state.find("Secret default/a"), std::string::npos) << state;
  EXPECT_NE(state.find("the last good certificate keeps serving"), std::string::npos) << state;
  EXPECT_EQ(agent.generation(), gen);  // nothing to serve differently
  auto a = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->peerFingerprint(), fp(a_));
  EXPECT_EQ(statusOf(a->get("a.test", "/")), 200);
}

TEST_F(Tls, RotationUnderLoadFailsNoRequest) {
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  Agent agent(dir_.path());
  // A connection opened before the rotation keeps working after it.
  auto before = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
  ASSERT_TRUE(before);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::atomic<int> rotated_seen{0};
  const Pem next = makeCertificate({.names = {"a.test"}, .issuer = &ca_});
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&] {
      while (!stop) {
        auto c = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
        if (c && statusOf(c->get("a.test", "/")) == 200) {
          ++ok;
          rotated_seen += c->peerFingerprint() == fp(next) ? 1 : 0;
        } else {
          ++failed;
        }
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", next) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  for (int i = 0; i < 100 && rotated_seen < 20; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  stop = true;
  for (auto& t : load) {
    t.join();
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(ok, 20);
  EXPECT_GE(rotated_seen, 20);  // new handshakes use the new certificate
  const std::string r = before->get("a.test", "/after");
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_EQ(before->peerFingerprint(), fp(a_));
}

TEST_F(Tls, SessionsResumeOnAnyWorker) {
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  Agent agent(dir_.path());
  for (int version : {TLS1_2_VERSION, 0}) {
    auto first = TlsClient::connect(agent.httpsPort(), {.sni = "a.test", .max_version = version});
    ASSERT_TRUE(first);
    EXPECT_EQ(statusOf(first->get("a.test", "/")), 200);  // reads the TLS 1.3 ticket too
    SSL_SESSION* session = first->session();
    ASSERT_NE(session, nullptr);
    for (int i = 0; i < 6; ++i) {  // two workers: some of these land on the other one
      auto again = TlsClient::connect(
          agent.httpsPort(), {.sni = "a.test", .session = session, .max_version = version});
      ASSERT_TRUE(again);
      EXPECT_TRUE(again->resumed()) << again->version() << " attempt " << i;
    }
    SSL_SESSION_free(session);
  }
  // The server counts a handshake when it has the client's Finished: a moment after the client.
  double resumed = 0;
  for (int i = 0; i < 50 && resumed < 12; ++i) {
    resumed = metricValue(agent.adminPort(), "sluice_tls_handshakes_total{result=\"resumed\"}");
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(resumed, 12);
}

// A TLS backend for passthrough: accepts one connection, answers "pong:<what it read>".
class TlsBackend {
public:
  // `proxy_v2`: a PROXY protocol v2 header comes before the ClientHello; its source address is
  // kept (proxySource()).
  explicit TlsBackend(const Pem& pem, bool proxy_v2 = false) : proxy_v2_(proxy_v2) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_, 8);
    ::getsockname(listen_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ctx_ = SSL_CTX_new(TLS_server_method());
    BIO* b = BIO_new_mem_buf(pem.cert.data(), static_cast<int>(pem.cert.size()));
    X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(pem.key.data(), static_cast<int>(pem.key.size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    SSL_CTX_use_certificate(ctx_, x);
    SSL_CTX_use_PrivateKey(ctx_, k);
    X509_free(x);
    EVP_PKEY_free(k);
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsBackend() {
    ::shutdown(listen_, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
    SSL_CTX_free(ctx_);
  }
  std::uint16_t port() const { return port_; }

private:
  void serve() {
    for (;;) {
      const int fd = ::accept(listen_, nullptr, nullptr);
      if (fd < 0) {
        return;
      }
      if (proxy_v2_ && !readProxyHeader(fd)) {
        ::close(fd);
        continue;
      }
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      char buf[64];
      std::size_t n = 0;
      if (SSL_accept(ssl) == 1 && SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) {
        const std::string reply = "pong:" + std::string(buf, n);
        SSL_write(ssl, reply.data(), static_cast<int>(reply.size()));
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
      ::close(fd);
    }
  }
  bool readProxyHeader(int fd) {
    std::string h(16, '\0');
    if (::recv(fd, h.data(), 16, MSG_WAITALL) != 16 ||
        h.compare(0, 12, std::string("\r\n\r\n\0\r\nQUIT\n", 12)) != 0 || h[12] != 0x21 ||
        h[13] != 0x11) {
      return false;
    }
    const std::size_t len =
        (static_cast<unsigned char>(h[14]) << 8) | static_cast<unsigned char>(h[15]);
    std::string body(len, '\0');
    if (len < 12 || ::recv(fd, body.data(), len, MSG_WAITALL) != static_cast<ssize_t>(len)) {
      return false;
    }
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, body.data(), text, sizeof text);
    std::lock_guard lock(mu_);
    proxy_source_ = text;
    return true;
  }

public:
  std::string proxySource() {
    std::lock_guard lock(mu_);
    return proxy_source_;
  }

private:
  bool proxy_v2_ = false;
  std::mutex mu_;
  std::string proxy_source_;
  int listen_ = -1;
  std::uint16_t port_ = 0;
  SSL_CTX* ctx_ = nullptr;
  std::thread thread_;
};

// A TLS client driven through memory BIOs, so the test decides how its bytes hit the wire: the
// first flight one byte per TCP segment (what broke other ingresses), the rest as it comes.
std::string passthroughExchange(std::uint16_t port, const std::string& sni,
                                const std::string& payload, std::string* peer) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "<connect>";
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_set_tlsext_host_name(ssl, sni.c_str());
  SSL_set_connect_state(ssl);
  bool first_flight = true;
  std::string result = "<handshake>";
  auto flush = [&] {
    char buf[16384];
    int n;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0) {
      for (int i = 0; i < n; i += first_flight ? 1 : n) {
        ::send(fd, buf + i, first_flight ? 1 : static_cast<std::size_t>(n), MSG_NOSIGNAL);
        if (first_flight) {
          std::this_thread::sleep_for(1ms);  // its own segment, for sure
        }
      }
      first_flight = false;
    }
  };
  auto fill = [&] {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) {
      return false;
    }
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return false;
    }
    BIO_write(in, buf, static_cast<int>(n));
    return true;
  };
  for (;;) {
    const int r = SSL_do_handshake(ssl);
    flush();
    if (r == 1) {
      break;
    }
    if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ || !fill()) {
      goto done;
    }
  }
  *peer = [&] {
    X509* x = SSL_get1_peer_certificate(ssl);
    std::array<char, 256> cn{};
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn.data(), 256);
    X509_free(x);
    return std::string(cn.data());
  }();
  SSL_write(ssl, payload.data(), static_cast<int>(payload.size()));
  flush();
  result.clear();
  for (char buf[4096];;) {
    std::size_t n = 0;
    if (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) {
      result.append(buf, n);
    } else if (SSL_get_error(ssl, 0) != SSL_ERROR_WANT_READ || !fill()) {
      break;
    }
  }
done:
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  ERR_clear_error();
  return result;
}

TEST_F(Tls, PassthroughBySniWithAOneBytePerSegmentClientHello) {
  const Pem backend_pem = makeCertificate({.names = {"p.test"}});
  TlsBackend backend(backend_pem);
  writePassthrough(backend.port());
  Agent agent(dir_.path());
  std::string peer;
  EXPECT_EQ(passthroughExchange(agent.httpsPort(), "p.test", "ping", &peer), "pong:ping");
  EXPECT_EQ(peer, "p.test");  // the backend's certificate: the agent did not terminate
  // The same listener still terminates other hosts, also from a byte-by-byte ClientHello.
  std::string terminated;
  const std::string response = passthroughExchange(
      agent.httpsPort(), "a.test", "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
      &terminated);
  EXPECT_EQ(terminated, "a.test");
  EXPECT_EQ(statusOf(response), 200) << response;
  EXPECT_EQ(metricValue(agent.adminPort(), "sluice_tls_passthrough_total"), 1);
}

// A passthrough connection is a handshake of the agent's only until its ClientHello is routed:
// held open afterwards, it must not count against --max-tls-handshakes (it did, for as long as
// the relay ran, until the release before the relay).
TEST_F(Tls, ARoutedPassthroughConnectionLeavesTheHandshakeCap) {
  const Pem backend_pem = makeCertificate({.names = {"p.test"}});
  TlsBackend backend(backend_pem);
  writePassthrough(backend.port());
  Agent agent(dir_.path(), {.extra_args = {"--max-tls-handshakes", "1"}});
  auto held = TlsClient::connect(agent.httpsPort(), {.sni = "p.test"});  // the backend's handshake
  ASSERT_TRUE(held);
  EXPECT_EQ(held->peerCommonName(), "p.test");
  EXPECT_EQ(metricValue(agent.adminPort(), "sluice_tls_handshakes_active"), 0);
  auto terminated = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
  ASSERT_TRUE(terminated) << "the held passthrough connection took the only handshake slot";
  EXPECT_EQ(statusOf(terminated->get("a.test", "/")), 200);
  EXPECT_EQ(metricValue(agent.adminPort(), "sluice_tls_handshakes_total{result=\"over_capacity\"}"),
            0);
}

// CPU seconds (user + system) the process has used so far, from /proc/PID/stat.
double cpuSeconds(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) {
      utime = std::stoull(field);
    } else if (i == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

TEST_F(Tls, ARequestRecordSplitAcrossSegmentsIsWaitedForNotSpunOn) {
  // The request's record arrives in two pieces, 400 ms apart, on an idle keep-alive connection.
  // After the first piece OpenSSL holds part of a record and asks for more: the session must
  // wait for the socket, not take the wake for a stale one and loop (SSL_has_pending() is true
  // while a partial record is buffered, so run() would not park).
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  Agent agent(dir_.path(), {{}, 1});
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(agent.httpsPort());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "a.test");
  ASSERT_EQ(SSL_connect(ssl), 1);
  // Records are encrypted into memory, so that their bytes can be sent in pieces.
  BIO* out = BIO_new(BIO_s_mem());
  BIO_up_ref(SSL_get_rbio(ssl));
  SSL_set_bio(ssl, SSL_get_rbio(ssl), out);
  const std::string request = "GET /split HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(SSL_write(ssl, request.data(), static_cast<int>(request.size())),
            static_cast<int>(request.size()));
  char* bytes = nullptr;
  const long len = BIO_get_mem_data(out, &bytes);
  ASSERT_GT(len, 10);
  const std::string record(bytes, static_cast<std::size_t>(len));
  std::this_thread::sleep_for(200ms);  // the agent is parked, idle
  ASSERT_EQ(::send(fd, record.data(), 10, 0), 10);
  std::this_thread::sleep_for(50ms);
  const double before = cpuSeconds(agent.process().pid());
  std::this_thread::sleep_for(400ms);
  const double spent = cpuSeconds(agent.process().pid()) - before;
  ASSERT_EQ(::send(fd, record.data() + 10, record.size() - 10, 0),
            static_cast<ssize_t>(record.size() - 10));
  std::string response;
  char buf[4096];
  for (;;) {
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    response.append(buf, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(statusOf(response), 200) << response;
  EXPECT_LT(spent, 0.1) << "the agent spun while half a record was buffered";
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
}

TEST_F(Tls, PassthroughSendsAProxyV2HeaderWhenAsked) {
  const Pem backend_pem = makeCertificate({.names = {"q.test"}});
  TlsBackend backend(backend_pem, true);
  dir_.write("m.yaml", base() + "---\n" +
                           serviceYaml("tlsapp", 443, "https", {{"127.0.0.1", backend.port()}}) +
                           "---\n" +
                           ingressYaml("q", {{"q.test", {{"/", "Prefix", "tlsapp", "https"}}}}, "",
                                       "", "sluice", "default", "2024-01-01T00:00:00Z",
                                       "    sluice.dev/ssl-passthrough: \"true\"\n"
                                       "    sluice.dev/proxy-protocol: \"v2\"\n"));
  Agent agent(dir_.path());
  std::string peer;
  EXPECT_EQ(passthroughExchange(agent.httpsPort(), "q.test", "ping", &peer), "pong:ping");
  EXPECT_EQ(peer, "q.test");
  EXPECT_EQ(backend.proxySource(), "127.0.0.1");
}

// After a burst of TLS connections has come and gone, the memory the allocator holds free goes
// back to the kernel (app/memory_release.cpp): without that, the agent would keep its peak RSS.
// RSS growth while `count` idle TLS connections are held open (KiB), and the agent's metric of
// record layers at that point.
long idleGrowthKiB(Agent& agent, int count, double& taken_over) {
  const pid_t pid = agent.process().pid();
  const long before = rssKiB(pid);
  std::vector<std::unique_ptr<TlsClient>> held;
  for (int i = 0; i < count; ++i) {
    auto c = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
    if (!c) {
      ADD_FAILURE() << "connection " << i;
      return 0;
    }
    held.push_back(std::move(c));
  }
  for (int i = 0; i < 200 && metricValue(agent.adminPort(), "sluice_active_connections") < count;
       ++i) {
    std::this_thread::sleep_for(10ms);
  }
  taken_over = metricValue(agent.adminPort(), "sluice_tls_record_layer_total{layer=\"sluice\"}");
  return rssKiB(pid) - before;
}

TEST_F(Tls, AnIdleTls13ConnectionHoldsNoOpenSslConnection) {
  // After the handshake the agent's own record layer has a TLS 1.3 connection and OpenSSL's
  // object is freed: 400 idle connections cost less than half of what they cost under OpenSSL
  // (measured: about 4.5 against 16.5 KiB each).
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  double own_count = 0, openssl_count = 0;
  long own = 0, openssl = 0;
  {
    Agent agent(dir_.path(), {.extra_args = {}, .workers = 1});
    own = idleGrowthKiB(agent, 400, own_count);
  }
  {
    Agent agent(dir_.path(), {.extra_args = {"--tls13-record-layer", "openssl"}, .workers = 1});
    openssl = idleGrowthKiB(agent, 400, openssl_count);
  }
  EXPECT_EQ(own_count, 400);
  EXPECT_EQ(openssl_count, 0);
  EXPECT_GT(openssl, 4000) << "400 connections under OpenSSL should take several MiB";
  EXPECT_LT(own * 2, openssl) << "own " << own << " KiB, OpenSSL " << openssl << " KiB";
}

TEST_F(Tls, MemoryOfABurstGoesBackOnceItClosed) {
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  // OpenSSL's record layer: its connections are the large ones whose memory must come back.
  Agent agent(dir_.path(), {.extra_args = {"--tls13-record-layer", "openssl"}, .workers = 1});
  const pid_t pid = agent.process().pid();
  const long before = rssKiB(pid);
  long peak = 0;
  {
    std::vector<std::unique_ptr<TlsClient>> held;  // each holds an OpenSSL object in the agent
    for (int i = 0; i < 400; ++i) {
      auto c = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
      ASSERT_TRUE(c) << i;
      held.push_back(std::move(c));
    }
    for (int i = 0; i < 200 && metricValue(agent.adminPort(), "sluice_active_connections") < 400;
         ++i) {
      std::this_thread::sleep_for(10ms);
    }
    peak = rssKiB(pid);
  }
  ASSERT_GT(peak - before, 4000) << "400 TLS connections should take several MiB";
  // Closed: within a few seconds at least half of what the burst took is resident no more.
  long now = peak;
  for (int i = 0; i < 100 && now > before + (peak - before) / 2; ++i) {
    std::this_thread::sleep_for(50ms);
    now = rssKiB(pid);
  }
  EXPECT_LE(now, before + (peak - before) / 2)
      << "before " << before << " peak " << peak << " active "
      << metricValue(agent.adminPort(), "sluice_active_connections");
  EXPECT_GE(metricValue(agent.adminPort(), "sluice_memory_releases_total"), 1);
  EXPECT_GT(metricValue(agent.adminPort(), "sluice_memory_released_bytes_total"), 0);
}

TEST_F(Tls, HandshakeLimits) {
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  Agent agent(dir_.path(), {.extra_args = {"--tls-handshake-timeout", "1s"}});
  {
    Connection silent(agent.httpsPort());  // says nothing: closed at the deadline
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(silent.waitClosed(5s));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  }
  {
    Connection plain(agent.httpsPort());  // HTTP on the HTTPS port
    plain.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    EXPECT_TRUE(plain.waitClosed(5s));
  }
  {
    Connection huge(agent.httpsPort());  // a record header announcing 17 KiB
    huge.send(std::string("\x16\x03\x01\x44\x00", 5));
    EXPECT_TRUE(huge.waitClosed(5s));
  }
  EXPECT_EQ(metricValue(agent.adminPort(), "sluice_tls_handshakes_total{result=\"timeout\"}"), 1);
  EXPECT_EQ(metricValue(agent.adminPort(),
                        "sluice_tls_client_hello_errors_total{reason=\"not_handshake\"}"),
            1);
  EXPECT_EQ(metricValue(agent.adminPort(),
                        "sluice_tls_client_hello_errors_total{reason=\"record_too_long\"}"),
            1);
  // And the agent serves on.
  auto c = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
  ASSERT_TRUE(c);
  EXPECT_EQ(statusOf(c->get("a.test", "/")), 200);
}

TEST_F(Tls, ConcurrentHandshakesAreCapped) {
  dir_.write("m.yaml", base() + "---\n" + tlsSecretYaml("default", "a", a_) + "---\n" +
                           tlsIngress("i", {"a.test"}, {"a.test"}, "a"));
  Agent agent(dir_.path(),
              {.extra_args = {"--max-tls-handshakes", "1", "--tls-handshake-timeout", "2s"}});
  Connection holder(agent.httpsPort());  // half a ClientHello: one handshake in progress
  holder.send(std::string("\x16\x03\x01\x02\x00\x01", 6));
  double active = 0;
  for (int i = 0; i < 100 && active < 1; ++i) {
    std::this_thread::sleep_for(10ms);
    active = metricValue(agent.adminPort(), "sluice_tls_handshakes_active");
  }
  ASSERT_EQ(active, 1);
  EXPECT_FALSE(TlsClient::connect(agent.httpsPort(), {.sni = "a.test"}));  // closed at once
  EXPECT_EQ(metricValue(agent.adminPort(), "sluice_tls_handshakes_total{result=\"over_capacity\"}"),
            1);
  EXPECT_TRUE(holder.waitClosed(5s));  // its deadline frees the slot
  auto c = TlsClient::connect(agent.httpsPort(), {.sni = "a.test"});
  ASSERT_TRUE(c);
  EXPECT_EQ(statusOf(c->get("a.test", "/")), 200);
}

TEST_F(Tls, PassthroughHonoursTheIngressSourceRanges) {
  const Pem backend_pem = makeCertificate({.names = {"p.test"}});
  TlsBackend backend(backend_pem);
  auto manifest = [&](const std::string& allow) {
    return base() + "---\n" + serviceYaml("tlsapp", 443, "https", {{"127.0.0.1", backend.port()}}) +
           "---\n" +
           ingressYaml("p", {{"p.test", {{"/", "Prefix", "tlsapp", "https"}}}}, "", "", "sluice",
                       "default", "2024-01-01T00:00:00Z",
                       "    sluice.dev/ssl-passthrough: \"true\"\n"
                       "    sluice.dev/allow-source-ranges: \"" +
                           allow + "\"\n");
  };
  dir_.write("m.yaml", manifest("10.0.0.0/8"));
  Agent agent(dir_.path());
  std::string peer;
  EXPECT_EQ(passthroughExchange(agent.httpsPort(), "p.test", "ping", &peer), "<handshake>");
  EXPECT_EQ(metricValue(agent.adminPort(), "sluice_tls_passthrough_refused_total"), 1);
  const std::uint64_t gen = agent.generation();
  dir_.write("m.yaml", manifest("127.0.0.0/8"));
  agent.waitGeneration(gen);
  EXPECT_EQ(passthroughExchange(agent.httpsPort(), "p.test", "ping", &peer), "pong:ping");
}

}  // namespace
}  // namespace sluice::test
