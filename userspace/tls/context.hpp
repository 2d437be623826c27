// Server SSL_CTXs: one per certificate, all with the agent's protocol settings, and one set of
// session-ticket keys shared by every context and worker (so a ticket issued on any worker
// resumes on any other), rotated on a timer.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <openssl/types.h>

#include "common/result.hpp"
#include "tls/certificate.hpp"

namespace sluice::tls {

// Mozilla's "intermediate" TLS 1.2 suites (TLS 1.3 suites are OpenSSL's defaults).
inline constexpr const char* kIntermediateCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

struct Settings {
  bool tls13_only = false;                     // --tls-min-version 1.3
  std::string ciphers = kIntermediateCiphers;  // --tls-ciphers (TLS 1.2)
  // Ticket keys: a new one every `ticket_rotation`; the previous two still decrypt, so a ticket
  // resumes for two to three rotations.
  std::chrono::seconds ticket_rotation{3600};
  bool session_tickets = true;  // --tls-session-tickets: false = every handshake is a full one
};

struct CtxFree {
  void operator()(SSL_CTX* ctx) const;
};
using ContextPtr = std::shared_ptr<SSL_CTX>;

class ContextFactory {
public:
  // Checks the settings (an unknown cipher list is an error naming it).
  static Result<std::unique_ptr<ContextFactory>> create(Settings settings);
  ~ContextFactory();

  // The context serving `cert`: the same one for the same certificate (by fingerprint) as long
  // as any snapshot still holds it, so a reload that keeps a certificate keeps its context.
  Result<ContextPtr> context(const CertificatePtr& cert);
  // Starts a new ticket-encryption key (control thread, on a timer; thread-safe).
  void rotateTicketKeys();
  const Settings& settings() const { return settings_; }

private:
  explicit ContextFactory(Settings settings);
  Result<ContextPtr> build(const CertificatePtr& cert);

  Settings settings_;
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<SSL_CTX>> cache_;  // by fingerprint
};

}  // namespace sluice::tls

namespace sluice::tls {

// Whether this kernel and this OpenSSL can do kTLS: a loopback TCP connection takes the "tls"
// upper-layer protocol. The error says why not (no CONFIG_TLS, module not loaded, an OpenSSL
// built without kTLS).
Result<void> probeKtls();

}  // namespace sluice::tls
