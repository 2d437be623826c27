// A blocking TLS client over one TCP connection (OpenSSL, as real clients use it), for tests
// that need to see what the server presented (certificate, version, resumption) and to speak
// HTTP over it.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::test {

struct TlsOptions {
  std::string sni{};               // "" = no server_name
  SSL_SESSION* session = nullptr;  // resume this session
  int max_version = 0;             // e.g. TLS1_2_VERSION; 0 = library default
  std::string alpn{};              // e.g. "http/1.1"; "" = none
  std::chrono::milliseconds timeout{5000};
};

class TlsClient {
public:
  // Null when the TCP connection or the handshake failed (`error` says why).
  static std::unique_ptr<TlsClient> connect(std::uint16_t port, const TlsOptions& options,
                                            std::string* error = nullptr);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // SHA-256 (hex) of the certificate the server presented.
  std::string peerFingerprint() const;
  std::string peerCommonName() const;
  bool resumed() const;
  std::string version() const;
  std::string alpn() const;
  bool write(std::string_view bytes);
  // Everything until the server closes (or the timeout): use with "Connection: close".
  std::string readAll();
  // One GET with Connection: close; the whole response text.
  std::string get(const std::string& host, const std::string& path);
  // The session to resume later (call after reading something: TLS 1.3 tickets arrive after
  // the handshake). Owned by the caller (SSL_SESSION_free).
  SSL_SESSION* session() const;
  int fd() const { return fd_; }

private:
  TlsClient() = default;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
};

// The status code of an HTTP response text, or 0.
int statusOf(std::string_view response);
// The value of header `name` (case-insensitive) in a response text, or nullopt.
std::optional<std::string> headerOf(std::string_view response, std::string_view name);

}  // namespace sluice::test
