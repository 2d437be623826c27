// Kubeconfig and in-cluster loading (bad inputs included), token rotation, and the TLS/auth
// options of a kubeconfig exercised against the fake API server.
#include "k8s/api/kubeconfig.hpp"

#include <cstdlib>
#include <filesystem>
#include <future>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "fake.hpp"
#include "k8s/api/client.hpp"

namespace sluice::k8s::api {
namespace {

namespace fs = std::filesystem;
using test::FakeApiServer;
using test::readFile;
using test::TempDir;
using test::writeFileAtomic;
using ::testing::HasSubstr;

std::string b64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], k[n & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned n = static_cast<unsigned char>(in[i]) << 16;
    out += {k[n >> 18], k[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned n =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {k[n >> 18], k[(n >> 12) & 63], k[(n >> 6) & 63], '='};
  }
  return out;
}

std::string kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& current = "ctx") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: " + current +
         "\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n    namespace: team\n"
         "clusters:\n- name: c\n  cluster:\n" +
         cluster + "users:\n- name: u\n  user:\n" + user;
}

TEST(Base64, DecodesAndRejects) {
  EXPECT_EQ(decodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(decodeBase64("aGVs\nbG8"), "hello");
  EXPECT_EQ(decodeBase64(""), "");
  EXPECT_FALSE(decodeBase64("aGVsbG8*"));
  EXPECT_FALSE(decodeBase64("a"));
  EXPECT_FALSE(decodeBase64("aGVsbG8=x"));
}

TEST(ServerUrl, Parses) {
  auto u = parseServerUrl("https://10.0.0.1:6443");
  ASSERT_OK(u);
  EXPECT_EQ(u->host, "10.0.0.1");
  EXPECT_EQ(u->port, "6443");
  u = parseServerUrl("https://[fd00::1]/");
  ASSERT_OK(u);
  EXPECT_EQ(u->host, "fd00::1");
  EXPECT_EQ(u->port, "443");
  EXPECT_THAT(test::errorOf(parseServerUrl("http://x:80")), HasSubstr("only https"));
  EXPECT_THAT(test::errorOf(parseServerUrl("https://x:99999")), HasSubstr("bad port"));
  EXPECT_THAT(test::errorOf(parseServerUrl("https://x/prefix")), HasSubstr("path prefix"));
}

TEST(Kubeconfig, TokenAndCaData) {
  auto r = parseKubeconfig(kubeconfig("    server: https://127.0.0.1:6443\n"
                                      "    certificate-authority-data: " +
                                          b64("-----BEGIN CERT-----") + "\n",
                                      "    token: abc\n"),
                           "/nonexistent");
  ASSERT_OK(r);
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, "6443");
  EXPECT_EQ(r->ca_pem, "-----BEGIN CERT-----");
  EXPECT_EQ(r->token.current(), "abc");
  EXPECT_EQ(r->ns, "team");
  EXPECT_FALSE(r->insecure_skip_tls_verify);
}

TEST(Kubeconfig, FilesRelativeToKubeconfigAndInsecure) {
  TempDir dir;
  writeFileAtomic(dir.path() / "ca.pem", "CA");
  writeFileAtomic(dir.path() / "c.pem", "CERT");
  writeFileAtomic(dir.path() / "k.pem", "KEY");
  writeFileAtomic(dir.path() / "tok", "t1\n");
  writeFileAtomic(dir.path() / "config",
                  kubeconfig("    server: https://h.example\n    certificate-authority: ca.pem\n"
                             "    insecure-skip-tls-verify: true\n",
                             "    client-certificate: c.pem\n    client-key: " +
                                 (dir.path() / "k.pem").string() + "\n    tokenFile: tok\n"));
  auto r = loadKubeconfig(dir.path() / "config");
  ASSERT_OK(r);
  EXPECT_EQ(r->ca_pem, "CA");
  EXPECT_EQ(r->client_cert_pem, "CERT");
  EXPECT_EQ(r->client_key_pem, "KEY");
  EXPECT_TRUE(r->insecure_skip_tls_verify);
  EXPECT_EQ(r->port, "443");
  EXPECT_EQ(r->token.current(), "t1");
  EXPECT_TRUE(r->token.fromFile());
}

TEST(Kubeconfig, BadInputsGiveClearErrors) {
  const std::string good_cluster = "    server: https://127.0.0.1:6443\n";
  struct Case {
    std::string text;
    std::string want;
  };
  const Case cases[] = {
      {"a: [unclosed", "not valid YAML"},
      {"- a\n- b\n", "not a mapping"},
      {kubeconfig(good_cluster, "    token: x\n", "missing"), "context \"missing\" not found"},
      {"contexts: []\nclusters: []\nusers: []\n", "current-context is not set"},
      {kubeconfig("    server: https://h\n    certificate-authority-data: '!!notbase64'\n",
                  "    token: x\n"),
       "certificate-authority-data: invalid base64"},
      {kubeconfig("    server: https://h\n    certificate-authority: /nonexistent/ca.pem\n",
                  "    token: x\n"),
       "cannot read /nonexistent/ca.pem"},
      {kubeconfig(good_cluster, "    tokenFile: /nonexistent/token\n"), "tokenFile"},
      {kubeconfig(good_cluster, "    client-certificate-data: " + b64("C") + "\n"),
       "needs both certificate and key"},
      {kubeconfig(good_cluster, "    exec:\n      command: aws\n"), "not supported"},
      {kubeconfig("    server: http://127.0.0.1\n", "    token: x\n"), "only https"},
      {kubeconfig("    certificate-authority-data: " + b64("x") + "\n", "    token: x\n"),
       "server: required"},
      {kubeconfig(good_cluster + "    insecure-skip-tls-verify: maybe\n", "    token: x\n"),
       "not a boolean"},
      {kubeconfig(good_cluster, "    token: [a, b]\n"), "must be a string"},
  };
  for (const Case& c : cases) {
    auto r = parseKubeconfig(c.text, "/", "", "kubeconfig test");
    EXPECT_FALSE(r) << c.text;
    EXPECT_THAT(test::errorOf(r), HasSubstr(c.want)) << c.text;
    EXPECT_THAT(test::errorOf(r), HasSubstr("kubeconfig test")) << c.text;
  }
  auto missing = loadKubeconfig("/nonexistent/kubeconfig");
  EXPECT_FALSE(missing);
  EXPECT_THAT(test::errorOf(missing), HasSubstr("cannot read /nonexistent/kubeconfig"));
}

TEST(InCluster, ReadsEnvAndMount) {
  TempDir dir;
  writeFileAtomic(dir.path() / "token", "sa-token\n");
  writeFileAtomic(dir.path() / "ca.crt", "CA");
  writeFileAtomic(dir.path() / "namespace", "sluice-system");
  ::setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto r = inCluster({dir.path()});
  ASSERT_OK(r);
  EXPECT_EQ(r->server, "https://[fd00::1]:443");
  EXPECT_EQ(r->host, "fd00::1");
  EXPECT_EQ(r->token.current(), "sa-token");
  EXPECT_EQ(r->ns, "sluice-system");

  fs::remove(dir.path() / "ca.crt");
  r = inCluster({dir.path()});
  EXPECT_FALSE(r);
  EXPECT_THAT(test::errorOf(r), HasSubstr("ca.crt"));

  ::unsetenv("KUBERNETES_SERVICE_HOST");
  r = inCluster({dir.path()});
  EXPECT_FALSE(r);
  EXPECT_THAT(test::errorOf(r), HasSubstr("KUBERNETES_SERVICE_HOST"));
  ::unsetenv("KUBERNETES_SERVICE_PORT");
}

TEST(TokenSource, RereadsWhenTheFileChanges) {
  TempDir dir;
  const fs::path file = dir.path() / "token";
  writeFileAtomic(file, "one\n");
  TokenSource t = TokenSource::file(file);
  EXPECT_EQ(t.current(), "one");
  writeFileAtomic(file, "two\n");  // rename: new inode, as kubelet's symlink swap
  EXPECT_EQ(t.current(), "two");
  fs::remove(file);
  EXPECT_THAT(test::errorOf(t.refresh()), HasSubstr("cannot stat"));
  EXPECT_EQ(t.current(), "two");  // keeps the last good token
  writeFileAtomic(file, "");
  EXPECT_THAT(test::errorOf(t.refresh()), HasSubstr("empty"));
  EXPECT_EQ(t.current(), "two");
  writeFileAtomic(file, "three");
  EXPECT_OK(t.refresh());
  EXPECT_EQ(t.current(), "three");
}

// ---- against the fake API server ----

Result<Response> runGet(ConnectionConfig cfg, const std::string& target,
                        std::string* create_error = nullptr) {
  test::IoThread io;
  ClientOptions opts;
  opts.connect_timeout = std::chrono::seconds(10);
  opts.request_timeout = std::chrono::seconds(10);
  auto made = Client::create(io.executor(), std::move(cfg), opts);
  if (!made) {
    if (create_error != nullptr) {
      *create_error = made.error().message();
    }
    return made.error();
  }
  return test::awaitOn(io.executor(), (*made)->get(target));
}

class KubeconfigLive : public ::testing::Test {
protected:
  FakeApiServer fake_;
  ConnectionConfig load(const std::string& cluster, const std::string& user) {
    writeFileAtomic(fake_.dir() / "kubeconfig",
                    kubeconfig("    server: " + fake_.server() + "\n" + cluster, user));
    auto r = loadKubeconfig(fake_.dir() / "kubeconfig");
    EXPECT_OK(r);
    return r ? std::move(*r) : ConnectionConfig{};
  }
};

TEST_F(KubeconfigLive, TokenWithCaFile) {
  auto r = runGet(load("    certificate-authority: ca.crt\n", "    token: token-1\n"),
                  "/apis/discovery.k8s.io");
  EXPECT_EQ(statusOf(r), 200u) << describe(r);
  r = runGet(load("    certificate-authority: ca.crt\n", "    token: wrong\n"),
             "/apis/discovery.k8s.io");
  EXPECT_EQ(statusOf(r), 401u) << describe(r);
}

TEST_F(KubeconfigLive, ClientCertificateWithCaData) {
  auto r = runGet(load("    certificate-authority-data: " + b64(readFile(fake_.ca())) + "\n",
                       "    client-certificate: client.crt\n    client-key: client.key\n"),
                  "/apis/discovery.k8s.io");
  EXPECT_EQ(statusOf(r), 200u) << describe(r);
}

TEST_F(KubeconfigLive, VerificationFailsWithoutTheCaUnlessInsecure) {
  auto r = runGet(load("", "    token: token-1\n"), "/apis/discovery.k8s.io");
  EXPECT_FALSE(r);
  EXPECT_THAT(test::errorOf(r), HasSubstr("TLS handshake"));
  r = runGet(load("    insecure-skip-tls-verify: true\n", "    token: token-1\n"),
             "/apis/discovery.k8s.io");
  EXPECT_EQ(statusOf(r), 200u) << describe(r);
}

TEST_F(KubeconfigLive, HostnameIsVerified) {
  // The serving certificate names IP 127.0.0.1 and DNS localhost.
  auto r = runGet(load("    certificate-authority: ca.crt\n    tls-server-name: localhost\n",
                       "    token: token-1\n"),
                  "/apis/discovery.k8s.io");
  EXPECT_EQ(statusOf(r), 200u) << describe(r);
  r = runGet(load("    certificate-authority: ca.crt\n    tls-server-name: other.example\n",
                  "    token: token-1\n"),
             "/apis/discovery.k8s.io");
  EXPECT_FALSE(r);
  EXPECT_THAT(test::errorOf(r), HasSubstr("hostname mismatch"));
  r = runGet(load("    certificate-authority: ca.crt\n    tls-server-name: 127.0.0.2\n",
                  "    token: token-1\n"),
             "/apis/discovery.k8s.io");
  EXPECT_FALSE(r);
  EXPECT_THAT(test::errorOf(r), HasSubstr("IP address mismatch"));
}

TEST_F(KubeconfigLive, BadCaOrKeyIsACreateError) {
  std::string err;
  ConnectionConfig cfg =
      load("    certificate-authority-data: " + b64("not a cert") + "\n", "    token: token-1\n");
  (void)runGet(cfg, "/", &err);
  EXPECT_THAT(err, HasSubstr("certificate authority"));
  cfg = load("    certificate-authority: ca.crt\n",
             "    client-certificate: client.crt\n    client-key: ca.key\n");
  err.clear();
  (void)runGet(cfg, "/", &err);
  EXPECT_THAT(err, HasSubstr("client key"));
}

}  // namespace
}  // namespace sluice::k8s::api
