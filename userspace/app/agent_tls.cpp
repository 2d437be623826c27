// The agent's HTTPS set-up, apart from the wiring in agent.cpp: protocol settings, the
// fallback certificate, and whether kTLS is used.
#include "app/agent.hpp"
#include "common/log.hpp"
#include "tls/block_pool.hpp"
#include "tls/certificate.hpp"
#include "tls/context.hpp"

namespace sluice::app {

Result<void> Agent::setUpTls() {
  if (!config_.listen_https) {
    return success();
  }
  auto log = log::get("agent");
  auto factory = tls::ContextFactory::create(config_.tls);
  if (!factory) {
    return factory.error();
  }
  // As ingress-nginx does: a certificate of our own for hosts that have none, made here and
  // kept only in memory.
  auto fallback = tls::Certificate::selfSigned("Sluice Ingress default certificate");
  if (!fallback) {
    return fallback.error();
  }
  if (config_.ktls_auto) {
    if (Result<void> probe = tls::probeKtls(); probe) {
      config_.proxy.ktls = true;
      log->info("kTLS: on for TLS 1.2 connections (TLS 1.3 stays in userspace: docs/tls.md)");
    } else {
      log->info("kTLS: off: {}", probe.error().message());
    }
  }
  log->info("TLS 1.3 record layer: {}", config_.proxy.own_tls13_records
                                            ? "the agent's own after OpenSSL's handshake "
                                              "(--tls13-record-layer sluice; docs/tls.md)"
                                            : "OpenSSL's (--tls13-record-layer openssl)");
  if (const char* why = tls::openSslAllocatorProblem()) {
    log->warn("TLS buffers come from the heap, not their own region: {}", why);
  }
  reconciler_.enableTls(std::move(*factory), std::move(*fallback));
  return success();
}

}  // namespace sluice::app
