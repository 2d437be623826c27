#include "tls/context.hpp"

#include "tls/connection.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <array>
#include <cstring>

namespace sluice::tls {

namespace {

struct TicketKey {
  std::array<unsigned char, 16> name{};
  std::array<unsigned char, 32> aes{};
  std::array<unsigned char, 32> hmac{};
};

// The agent's ticket keys, newest first; shared by every context of every factory (one agent).
struct TicketKeys {
  std::mutex mu;
  std::array<TicketKey, 3> keys{};
  std::size_t count = 0;

  bool rotate() {
    TicketKey k;
    if (RAND_bytes(k.name.data(), static_cast<int>(k.name.size())) != 1 ||
        RAND_bytes(k.aes.data(), static_cast<int>(k.aes.size())) != 1 ||
        RAND_bytes(k.hmac.data(), static_cast<int>(k.hmac.size())) != 1) {
      return false;
    }
    std::lock_guard lock(mu);
    for (std::size_t i = keys.size() - 1; i > 0; --i) {
      keys[i] = keys[i - 1];
    }
    keys[0] = k;
    count = std::min(count + 1, keys.size());
    OPENSSL_cleanse(&k, sizeof k);
    return true;
  }
};

TicketKeys& ticketKeys() {
  static TicketKeys keys;
  return keys;
}

int setupCipher(EVP_CIPHER_CTX* ctx, EVP_MAC_CTX* hctx, const TicketKey& k, unsigned char* iv,
                int enc) {
  std::array<OSSL_PARAM, 2> params{
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                        const_cast<unsigned char*>(k.hmac.data()), k.hmac.size()),
      OSSL_PARAM_construct_end()};
  // EVP_MAC_CTX_set_params takes the digest by name as well.
  std::array<OSSL_PARAM, 2> digest{
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(hctx, digest.data()) != 1 ||
      EVP_MAC_CTX_set_params(hctx, params.data()) != 1) {
    return -1;
  }
  return EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), nullptr, k.aes.data(), iv, enc) == 1 ? 1 : -1;
}

// SSL_CTX_set_tlsext_ticket_key_evp_cb: encrypt with the newest key, decrypt with any kept one
// and always re-issue (under the newest key).
int ticketCallback(SSL*, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* ctx,
                   EVP_MAC_CTX* hctx, int enc) {
  TicketKeys& keys = ticketKeys();
  std::lock_guard lock(keys.mu);
  if (keys.count == 0) {
    return enc ? -1 : 0;
  }
  if (enc) {
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) {
      return -1;
    }
    std::memcpy(key_name, keys.keys[0].name.data(), keys.keys[0].name.size());
    return setupCipher(ctx, hctx, keys.keys[0], iv, 1);
  }
  for (std::size_t i = 0; i < keys.count; ++i) {
    if (std::memcmp(key_name, keys.keys[i].name.data(), keys.keys[i].name.size()) == 0) {
      if (setupCipher(ctx, hctx, keys.keys[i], iv, 0) != 1) {
        return -1;
      }
      // 2: valid, and issue a fresh ticket. With 1, a resumed TLS 1.3 connection gets no new
      // ticket, and a client that uses each ticket once (as TLS 1.3 clients should) does a full
      // handshake every other time: measured with wrk, half the handshakes resumed.
      return 2;
    }
  }
  return 0;  // unknown key: full handshake
}

// ALPN: http/1.1 when offered; a client that offers only other protocols (h2) gets no ALPN
// answer and may still speak HTTP/1.1 (the plumbing is here for h2 later).
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

std::string sslError() {
  std::array<char, 256> buf{};
  ERR_error_string_n(ERR_get_error(), buf.data(), buf.size());
  ERR_clear_error();
  return buf.data();
}

}  // namespace

void CtxFree::operator()(SSL_CTX* ctx) const {
  SSL_CTX_free(ctx);
}

ContextFactory::ContextFactory(Settings settings) : settings_(std::move(settings)) {}
ContextFactory::~ContextFactory() = default;

Result<std::unique_ptr<ContextFactory>> ContextFactory::create(Settings settings) {
  std::unique_ptr<ContextFactory> f(new ContextFactory(std::move(settings)));
  if (ticketKeys().count == 0 && !ticketKeys().rotate()) {
    return Error("TLS session tickets: no randomness for a key");
  }
  // A throwaway context proves the cipher list before any certificate arrives.
  SSL_CTX* probe = SSL_CTX_new(TLS_server_method());
  const bool ok = probe != nullptr && SSL_CTX_set_cipher_list(probe, f->settings_.ciphers.c_str());
  SSL_CTX_free(probe);
  if (!ok) {
    return Error("--tls-ciphers \"" + f->settings_.ciphers + "\": " + sslError());
  }
  return f;
}

void ContextFactory::rotateTicketKeys() {
  ticketKeys().rotate();
}

Result<ContextPtr> ContextFactory::context(const CertificatePtr& cert) {
  std::lock_guard lock(mu_);
  if (auto it = cache_.find(cert->fingerprint()); it != cache_.end()) {
    if (ContextPtr ctx = it->second.lock()) {
      return ctx;
    }
  }
  Result<ContextPtr> built = build(cert);
  if (built) {
    cache_[cert->fingerprint()] = *built;
  }
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = it->second.expired() ? cache_.erase(it) : std::next(it);
  }
  return built;
}

Result<ContextPtr> ContextFactory::build(const CertificatePtr& cert) {
  ERR_clear_error();
  ContextPtr ctx(SSL_CTX_new(TLS_server_method()), CtxFree{});
  if (!ctx) {
    return Error("SSL_CTX_new: " + sslError());
  }
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, settings_.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_options(
      c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Idle connections give their record buffers back (issue 11: memory per idle TLS connection).
  // A write retried after WANT_WRITE may come from another address holding the same bytes (the
  // proxy coalesces small writes in a per-thread buffer).
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_set_cipher_list(c, settings_.ciphers.c_str()) != 1) {
    return Error("--tls-ciphers: " + sslError());
  }
  if (SSL_CTX_use_certificate(c, cert->leaf()) != 1 ||
      SSL_CTX_use_PrivateKey(c, cert->key()) != 1) {
    return Error("certificate " + cert->fingerprint().substr(0, 16) + ": " + sslError());
  }
  for (int i = 0; i < sk_X509_num(cert->chain()); ++i) {
    if (SSL_CTX_add1_chain_cert(c, sk_X509_value(cert->chain(), i)) != 1) {
      return Error("certificate chain: " + sslError());
    }
  }
  // Stateless resumption only: tickets under the shared keys, no per-worker session cache.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (settings_.session_tickets) {
    SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticketCallback);
    SSL_CTX_set_num_tickets(c, 1);
  } else {
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c, 0);
  }
  SSL_CTX_set_timeout(c, static_cast<long>(2 * settings_.ticket_rotation.count()));
  static constexpr unsigned char kSid[] = "sluice";
  SSL_CTX_set_session_id_context(c, kSid, sizeof kSid - 1);
  SSL_CTX_set_alpn_select_cb(c, selectAlpn, nullptr);
  // How a TLS 1.3 connection's traffic secrets reach Record13 (connection.cpp); the lines are
  // never written anywhere.
  SSL_CTX_set_keylog_callback(c, keyLogCallback);
  return ctx;
}

}  // namespace sluice::tls

#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice::tls {

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

}  // namespace

Result<void> probeKtls() {
#if defined(OPENSSL_NO_KTLS)
  return Error("this OpenSSL was built without kTLS");
#else
  Fd listener{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  Fd client{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener.fd < 0 || client.fd < 0 ||
      ::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.fd, 1) != 0 ||
      ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::connect(client.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return errnoError("kTLS probe: loopback connection");
  }
  Fd accepted{::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC)};
  static constexpr char kUlp[] = "tls";
  if (::setsockopt(client.fd, SOL_TCP, TCP_ULP, kUlp, sizeof kUlp) != 0) {
    const int err = errno;
    return Error(err, err == ENOENT ? "the kernel has no TLS upper-layer protocol (CONFIG_TLS off "
                                      "or the tls module not loaded)"
                                    : "setsockopt(TCP_ULP, \"tls\")");
  }
  // The ULP alone is not enough: the record layer needs the AEAD from the crypto API, and
  // without it (gcm not loaded) OpenSSL would quietly stay in userspace. A throwaway key on a
  // socket that never carries a record proves the cipher is there.
  tls12_crypto_info_aes_gcm_256 info{};
  info.info.version = TLS_1_2_VERSION;
  info.info.cipher_type = TLS_CIPHER_AES_GCM_256;
  if (::setsockopt(client.fd, SOL_TLS, TLS_TX, &info, sizeof info) != 0) {
    const int err = errno;
    return Error(err, err == ENOENT ? "the kernel has TLS but no gcm(aes) (load the gcm module)"
                                    : "setsockopt(SOL_TLS, TLS_TX)");
  }
  return success();
#endif
}

}  // namespace sluice::tls
