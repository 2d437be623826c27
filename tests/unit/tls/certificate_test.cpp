// Certificates from PEM, the context factory, the SNI table, a handshake over a socket pair
// with the replayed ClientHello, and the drained hint of reads over loopback TCP: OpenSSL for
// real on both ends.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/ready_wait.hpp"
#include "proxy/tls_table.hpp"
#include "support/result.hpp"
#include "support/test_pki.hpp"
#include "tls/certificate.hpp"
#include "tls/connection.hpp"
#include "tls/context.hpp"

namespace sluice::tls {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const test::Pem& ca() {
  static const test::Pem pem = test::makeCertificate({.names = {"Test CA"}, .ca = true});
  return pem;
}

TEST(Certificate, EcdsaLeafWithChain) {
  const test::Pem leaf = test::makeCertificate({.names = {"a.test", "*.b.test"}, .issuer = &ca()});
  auto cert = Certificate::fromPem(leaf.cert, leaf.key, std::time(nullptr));
  ASSERT_OK(cert);
  EXPECT_THAT((*cert)->names(), ElementsAre("a.test", "*.b.test"));
  EXPECT_EQ((*cert)->keyType(), "EC-prime256v1");
  EXPECT_EQ(sk_X509_num((*cert)->chain()), 1);
  EXPECT_EQ((*cert)->fingerprint(), test::fingerprint(leaf.cert));
  EXPECT_GT((*cert)->notAfter(), std::time(nullptr));
}

TEST(Certificate, Rsa) {
  const test::Pem leaf = test::makeCertificate({.names = {"r.test"}, .rsa = true});
  auto cert = Certificate::fromPem(leaf.cert, leaf.key, std::time(nullptr));
  ASSERT_OK(cert);
  EXPECT_EQ((*cert)->keyType(), "RSA-2048");
}

TEST(Certificate, Refusals) {
  const test::Pem a = test::makeCertificate({.names = {"a.test"}});
  const test::Pem b = test::makeCertificate({.names = {"b.test"}});
  const test::Pem old =
      test::makeCertificate({.names = {"o.test"}, .valid_from_days = -30, .valid_to_days = -1});
  const std::time_t now = std::time(nullptr);
  auto mismatch = Certificate::fromPem(a.cert, b.key, now);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_THAT(mismatch.error().message(), HasSubstr("does not match"));
  auto expired = Certificate::fromPem(old.cert, old.key, now);
  ASSERT_FALSE(expired.ok());
  EXPECT_THAT(expired.error().message(), HasSubstr("expired at"));
  EXPECT_FALSE(Certificate::fromPem("not pem", a.key, now).ok());
  EXPECT_FALSE(Certificate::fromPem(a.cert, "not pem", now).ok());
  EXPECT_FALSE(Certificate::fromPem("", "", now).ok());
  // A chain whose second block is broken is refused, not silently cut short.
  std::string broken = a.cert + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  EXPECT_FALSE(Certificate::fromPem(broken, a.key, now).ok());
}

TEST(Certificate, SelfSigned) {
  auto cert = Certificate::selfSigned("Sluice default");
  ASSERT_OK(cert);
  EXPECT_THAT((*cert)->names(), ElementsAre("Sluice default"));
  EXPECT_EQ(X509_check_private_key((*cert)->leaf(), (*cert)->key()), 1);
}

TEST(Base64, StrictDecoding) {
  EXPECT_EQ(*decodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(*decodeBase64("aGVsbG8h"), "hello!");
  EXPECT_EQ(*decodeBase64(""), "");
  EXPECT_FALSE(decodeBase64("aGVsbG8").ok());   // not a multiple of 4
  EXPECT_FALSE(decodeBase64("aGV$bG8=").ok());  // not base64
}

TEST(ContextFactory, BadCipherListIsAnError) {
  auto f = ContextFactory::create({.ciphers = "NO-SUCH-CIPHER"});
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.error().message(), HasSubstr("--tls-ciphers"));
}

TEST(ContextFactory, SameCertificateSameContext) {
  auto f = ContextFactory::create({});
  ASSERT_OK(f);
  const test::Pem a = test::makeCertificate({.names = {"a.test"}});
  auto c1 = Certificate::fromPem(a.cert, a.key, std::time(nullptr));
  auto c2 = Certificate::fromPem(a.cert, a.key, std::time(nullptr));
  ASSERT_OK(c1);
  ASSERT_OK(c2);
  auto x1 = (*f)->context(*c1);
  auto x2 = (*f)->context(*c2);
  ASSERT_OK(x1);
  ASSERT_OK(x2);
  EXPECT_EQ(x1->get(), x2->get());  // a reload that keeps the certificate keeps the context
}

TEST(TlsTable, ExactThenOneLabelWildcardThenDefault) {
  auto f = ContextFactory::create({});
  ASSERT_OK(f);
  auto ctx = [&](const char* name) {
    const test::Pem p = test::makeCertificate({.names = {name}});
    return *(*f)->context(*Certificate::fromPem(p.cert, p.key, std::time(nullptr)));
  };
  proxy::TlsTable t;
  ContextPtr exact = ctx("a.b.test"), wild = ctx("*.b.test"), def = ctx("default");
  t.addHost("a.b.test", {exact, true, ""});
  t.addHost("*.b.test", {wild, false, "max-age=1"});
  t.setDefault(def);
  t.addPassthrough("p.test", {7, true, {}});
  EXPECT_EQ(t.contextFor("a.b.test"), exact.get());
  EXPECT_EQ(t.contextFor("x.b.test"), wild.get());
  EXPECT_EQ(t.contextFor("y.x.b.test"), def.get());  // a wildcard covers one label only
  EXPECT_EQ(t.contextFor("b.test"), def.get());
  EXPECT_EQ(t.contextFor(""), def.get());
  EXPECT_EQ(t.find("x.b.test")->hsts, "max-age=1");
  EXPECT_EQ(t.find("other.test"), nullptr);
  ASSERT_NE(t.passthrough("p.test"), nullptr);
  EXPECT_EQ(t.passthrough("p.test")->cluster, 7u);
  EXPECT_TRUE(t.passthrough("p.test")->proxy_v2);
  EXPECT_EQ(t.passthrough("q.test"), nullptr);
}

// The server reads the first bytes of the connection itself (as the agent reads the
// ClientHello) and hands them to Connection::accept; OpenSSL must complete the handshake and
// carry data both ways.
TEST(Connection, HandshakeWithReplayedBytes) {
  auto f = ContextFactory::create({});
  ASSERT_OK(f);
  const test::Pem p = test::makeCertificate({.names = {"a.test"}});
  auto server_ctx = (*f)->context(*Certificate::fromPem(p.cert, p.key, std::time(nullptr)));
  ASSERT_OK(server_ctx);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::thread client([fd = fds[1]] {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "a.test");
    if (SSL_connect(ssl) == 1) {
      SSL_write(ssl, "ping", 4);
      char buf[4];
      SSL_read(ssl, buf, 4);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ::close(fd);
  });
  std::uint8_t first[64];
  const ssize_t n = ::read(fds[0], first, sizeof first);
  ASSERT_GT(n, 0);
  auto conn = Connection::accept(server_ctx->get(), fds[0], {first, first + n}, false);
  ASSERT_NE(conn, nullptr);
  Io io = Io::kWantRead;
  while (io == Io::kWantRead || io == Io::kWantWrite) {
    io = conn->handshake();  // blocking socket: each call waits inside OpenSSL
  }
  ASSERT_EQ(io, Io::kDone) << conn->lastError();
  // The replay was read: the filter BIOs are gone, reads go straight to the socket.
  EXPECT_FALSE(conn->replaying());
  char buf[4];
  std::size_t got = 0;
  ASSERT_EQ(conn->read(buf, sizeof buf, got), Io::kDone) << conn->lastError();
  EXPECT_EQ(std::string(buf, got), "ping");
  std::size_t sent = 0;
  EXPECT_EQ(conn->write("pong", 4, sent), Io::kDone);
  EXPECT_EQ(sent, 4u);
  EXPECT_STREQ(conn->version(), "TLSv1.3");
  client.join();
  ::close(fds[0]);
}

TEST(Connection, ReadsSayWhetherTheyDrainedTheSocket) {
  // Over loopback TCP with TCP_INQ (the agent's listeners set it): a read that took the whole
  // record says drained; one with a FIN behind its record does not, so a wait after it looks.
  auto f = ContextFactory::create({});
  ASSERT_OK(f);
  const test::Pem p = test::makeCertificate({.names = {"a.test"}});
  auto server_ctx = (*f)->context(*Certificate::fromPem(p.cert, p.key, std::time(nullptr)));
  ASSERT_OK(server_ctx);
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  ASSERT_TRUE(net::enableInqHint(listener));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::atomic<int> step{0};  // the client writes each record only once the server is ready
  std::thread client([addr, &step] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
      SSL* ssl = SSL_new(ctx);
      SSL_set_fd(ssl, fd);
      SSL_set_tlsext_host_name(ssl, "a.test");
      const auto until = [&step](int n) {
        while (step < n) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      };
      if (SSL_connect(ssl) == 1) {
        until(1);
        SSL_write(ssl, "ping", 4);
        until(2);
        SSL_write(ssl, "last", 4);
        ::shutdown(fd, SHUT_WR);  // a FIN right behind the last record (close() with the
        until(3);                 // server's tickets unread would send a reset)
      }
      SSL_free(ssl);
      SSL_CTX_free(ctx);
    }
    ::close(fd);
  });
  struct Finish {  // on any way out, even a failed assertion: release the client and join it
    std::atomic<int>& step;
    std::thread& client;
    ~Finish() {
      step = 3;
      client.join();
    }
  } finish{step, client};
  const int fd = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(fd, 0);
  auto conn = Connection::accept(server_ctx->get(), fd, {}, false);
  ASSERT_NE(conn, nullptr);
  Io io = Io::kWantRead;
  while (io == Io::kWantRead || io == Io::kWantWrite) {
    io = conn->handshake();
  }
  ASSERT_EQ(io, Io::kDone) << conn->lastError();
  step = 1;
  char buf[16];
  std::size_t got = 0;
  ASSERT_EQ(conn->read(buf, sizeof buf, got), Io::kDone) << conn->lastError();
  EXPECT_EQ(std::string(buf, got), "ping");
  EXPECT_TRUE(conn->drained());
  step = 2;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the record and the FIN arrive
  ASSERT_EQ(conn->read(buf, sizeof buf, got), Io::kDone);
  EXPECT_EQ(std::string(buf, got), "last");
  EXPECT_FALSE(conn->drained()) << "the FIN behind the record is still to be read";
  ::close(fd);
  ::close(listener);
}

}  // namespace
}  // namespace sluice::tls
