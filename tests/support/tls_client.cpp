#include "support/tls_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <csignal>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "support/test_pki.hpp"

namespace sluice::test {

std::unique_ptr<TlsClient> TlsClient::connect(std::uint16_t port, const TlsOptions& o,
                                              std::string* error) {
  // OpenSSL writes with write(2): a server that closed first must not kill the test.
  ::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<TlsClient> c(new TlsClient());
  auto fail = [&](const std::string& what) -> std::unique_ptr<TlsClient> {
    if (error != nullptr) {
      std::array<char, 256> buf{};
      ERR_error_string_n(ERR_get_error(), buf.data(), buf.size());
      *error = what + ": " + buf.data();
    }
    ERR_clear_error();
    return nullptr;
  };
  c->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{static_cast<time_t>(o.timeout.count() / 1000),
             static_cast<suseconds_t>((o.timeout.count() % 1000) * 1000)};
  ::setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(c->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(c->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return fail("connect");
  }
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (o.max_version != 0) {
    SSL_CTX_set_max_proto_version(c->ctx_, o.max_version);
  }
  c->ssl_ = SSL_new(c->ctx_);
  SSL_set_fd(c->ssl_, c->fd_);
  if (!o.sni.empty()) {
    SSL_set_tlsext_host_name(c->ssl_, o.sni.c_str());
  }
  if (!o.alpn.empty()) {
    std::string wire(1, static_cast<char>(o.alpn.size()));
    wire += o.alpn;
    SSL_set_alpn_protos(c->ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  if (o.session != nullptr) {
    SSL_set_session(c->ssl_, o.session);
  }
  if (SSL_connect(c->ssl_) != 1) {
    return fail("handshake");
  }
  return c;
}

TlsClient::~TlsClient() {
  if (ssl_ != nullptr) {
    // A clean close, as browsers do: OpenSSL marks the session of a connection freed without
    // close_notify as not resumable.
    if (SSL_is_init_finished(ssl_)) {
      SSL_shutdown(ssl_);
    }
    ERR_clear_error();
    SSL_free(ssl_);
  }
  if (ctx_ != nullptr) {
    SSL_CTX_free(ctx_);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::string TlsClient::peerFingerprint() const {
  X509* x = SSL_get1_peer_certificate(ssl_);
  if (x == nullptr) {
    return "";
  }
  std::string out = fingerprint(x);
  X509_free(x);
  return out;
}

std::string TlsClient::peerCommonName() const {
  X509* x = SSL_get1_peer_certificate(ssl_);
  if (x == nullptr) {
    return "";
  }
  std::array<char, 256> cn{};
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn.data(),
                            static_cast<int>(cn.size()));
  X509_free(x);
  return cn.data();
}

bool TlsClient::resumed() const {
  return SSL_session_reused(ssl_) == 1;
}

std::string TlsClient::version() const {
  return SSL_get_version(ssl_);
}

std::string TlsClient::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return std::string(reinterpret_cast<const char*>(p), len);
}

bool TlsClient::write(std::string_view bytes) {
  std::size_t n = 0;
  return SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n) == 1 && n == bytes.size();
}

std::string TlsClient::readAll() {
  std::string out;
  std::array<char, 16384> buf{};
  for (;;) {
    std::size_t n = 0;
    if (SSL_read_ex(ssl_, buf.data(), buf.size(), &n) != 1) {
      ERR_clear_error();
      return out;
    }
    out.append(buf.data(), n);
  }
}

std::string TlsClient::get(const std::string& host, const std::string& path) {
  if (!write("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")) {
    return "";
  }
  return readAll();
}

SSL_SESSION* TlsClient::session() const {
  return SSL_get1_session(ssl_);
}

int statusOf(std::string_view response) {
  if (response.size() < 12 || !response.starts_with("HTTP/1.")) {
    return 0;
  }
  return std::atoi(std::string(response.substr(9, 3)).c_str());
}

std::optional<std::string> headerOf(std::string_view response, std::string_view name) {
  const std::size_t end = response.find("\r\n\r\n");
  std::size_t pos = response.find("\r\n");
  while (pos != std::string_view::npos && pos < end) {
    const std::size_t next = response.find("\r\n", pos + 2);
    const std::string_view line = response.substr(pos + 2, next - pos - 2);
    const std::size_t colon = line.find(':');
    if (colon == name.size() &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') {
        v.remove_prefix(1);
      }
      return std::string(v);
    }
    pos = next;
  }
  return std::nullopt;
}

}  // namespace sluice::test
