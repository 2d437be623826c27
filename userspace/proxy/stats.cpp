#include "proxy/stats.hpp"

#include "tls/block_pool.hpp"
#include "tls/client_hello.hpp"
#include "tls/connection.hpp"

namespace sluice::proxy {

int statusOf(LocalReply r) {
  static constexpr int kStatus[] = {400, 404, 408, 413, 414, 431, 502, 503, 504, 403};
  return kStatus[static_cast<std::size_t>(r)];
}

TlsStats& tlsStats() {
  static TlsStats stats;
  return stats;
}

void renderTlsMetrics(admin::MetricsWriter& out) {
  using Type = admin::MetricsWriter::Type;
  const TlsStats& t = tlsStats();
  out.gauge("sluice_tls_handshakes_active", "TLS handshakes in progress (--max-tls-handshakes).",
            t.active_handshakes.load());
  out.family("sluice_tls_handshakes_total", Type::kCounter,
             "TLS handshakes on the HTTPS listener by result: ok (resumed counted apart), "
             "failed, timeout, over_capacity, no_certificate.");
  out.sample("sluice_tls_handshakes_total", {{"result", "ok"}}, t.handshakes.load());
  out.sample("sluice_tls_handshakes_total", {{"result", "resumed"}}, t.resumed.load());
  out.sample("sluice_tls_handshakes_total", {{"result", "failed"}}, t.failed.load());
  out.sample("sluice_tls_handshakes_total", {{"result", "timeout"}}, t.timeouts.load());
  out.sample("sluice_tls_handshakes_total", {{"result", "over_capacity"}}, t.over_capacity.load());
  out.sample("sluice_tls_handshakes_total", {{"result", "no_certificate"}},
             t.no_certificate.load());
  out.counter("sluice_tls_ktls_connections_total",
              "Terminated connections whose record layer moved into the kernel (kTLS).",
              t.ktls.load());
  out.family("sluice_tls_record_layer_total", Type::kCounter,
             "TLS 1.3 connections after their handshake by record layer: sluice (the agent's "
             "own; OpenSSL's connection freed), or openssl and why: other_suite (CCM), unsure "
             "(OpenSSL's reports did not add up), setup_failed.");
  static constexpr std::array<std::pair<tls::RecordLayer, const char*>, 4> kLayers{{
      {tls::RecordLayer::kTakenOver, "sluice"},
      {tls::RecordLayer::kOtherSuite, "other_suite"},
      {tls::RecordLayer::kUnsure, "unsure"},
      {tls::RecordLayer::kSetupFailed, "setup_failed"},
  }};
  for (const auto& [layer, name] : kLayers) {
    const auto v = t.record_layer[static_cast<std::size_t>(layer)].load();
    if (layer == tls::RecordLayer::kTakenOver) {
      out.sample("sluice_tls_record_layer_total", {{"layer", name}}, v);
    } else {
      out.sample("sluice_tls_record_layer_total", {{"layer", "openssl"}, {"reason", name}}, v);
    }
  }
  out.counter("sluice_tls_passthrough_total",
              "Connections relayed undecrypted to a backend by their SNI (ssl-passthrough).",
              t.passthrough.load());
  out.counter("sluice_tls_passthrough_refused_total",
              "Passthrough connections closed because the client is outside the Ingress's "
              "sluice.dev/allow-source-ranges or inside its deny-source-ranges.",
              t.passthrough_refused.load());
  out.counter("sluice_tls_redirects_total",
              "Plain HTTP requests for a TLS host answered with a 308 to https.",
              t.redirects.load());
  if (const tls::BlockPool* pool = tls::openSslBlockPool()) {
    const tls::BlockPool::Stats b = pool->stats();
    out.gauge("sluice_tls_buffer_slots",
              "Slots of the region OpenSSL's record and handshake buffers come from that have "
              "been used (24 KiB of address space each; resident only as written).",
              static_cast<std::int64_t>(b.mapped_slots));
    out.counter("sluice_tls_buffer_releases_total",
                "Freed TLS buffers whose pages went back to the kernel (beyond what a worker "
                "keeps for its next ones).",
                b.releases);
    out.counter("sluice_tls_buffer_overflows_total",
                "TLS buffers allocated from the heap because the region was full.", b.overflows);
  }
  out.family("sluice_tls_client_hello_errors_total", Type::kCounter,
             "Connections closed because their ClientHello was refused, by reason.");
  for (std::size_t i = 1; i < tls::kErrorCount && i < t.hello_errors.size(); ++i) {
    if (const auto v = t.hello_errors[i].load(); v != 0) {
      out.sample("sluice_tls_client_hello_errors_total",
                 {{"reason", tls::name(static_cast<tls::Error>(i))}}, v);
    }
  }
}

GlobalStats& globalStats() {
  static GlobalStats stats;
  return stats;
}

void renderGlobalMetrics(admin::MetricsWriter& out) {
  renderTlsMetrics(out);
  using Type = admin::MetricsWriter::Type;
  const GlobalStats& g = globalStats();
  out.family("sluice_local_replies_total", Type::kCounter,
             "Replies the agent generated itself (errors), by status.");
  for (std::size_t i = 0; i < g.local_replies.size(); ++i) {
    const std::string code = std::to_string(statusOf(static_cast<LocalReply>(i)));
    out.sample("sluice_local_replies_total", {{"code", code}}, g.local_replies[i].load());
  }
  out.family("sluice_request_parse_errors_total", Type::kCounter,
             "Requests rejected by the strict HTTP parser, by reason.");
  for (std::size_t i = 1; i < g.parse_errors.size(); ++i) {
    if (const auto v = g.parse_errors[i].load(); v != 0) {
      out.sample("sluice_request_parse_errors_total",
                 {{"reason", http::errorName(static_cast<http::ParseError>(i))}}, v);
    }
  }
  out.family("sluice_request_path_rejected_total", Type::kCounter,
             "Requests refused (400) because of their path, by reason (escaped_slash, "
             "backslash, above_root, ...).");
  for (std::size_t i = 1; i < g.path_errors.size(); ++i) {
    if (const auto v = g.path_errors[i].load(); v != 0) {
      out.sample("sluice_request_path_rejected_total",
                 {{"reason", http::pathErrorName(static_cast<http::PathError>(i))}}, v);
    }
  }
  out.family("sluice_proxy_protocol_total", Type::kCounter,
             "PROXY protocol headers: accepted from --trusted-proxies, refused from other "
             "peers (untrusted), or malformed (by reason); refused and malformed ones close the "
             "connection.");
  out.sample("sluice_proxy_protocol_total", {{"result", "accepted"}}, g.proxy_headers.load());
  out.sample("sluice_proxy_protocol_total", {{"result", "untrusted"}}, g.proxy_untrusted.load());
  for (std::size_t i = 1; i < g.proxy_errors.size(); ++i) {
    if (const auto v = g.proxy_errors[i].load(); v != 0) {
      out.sample("sluice_proxy_protocol_total",
                 {{"result", std::string(http::proxyErrorName(static_cast<http::ProxyError>(i)))}},
                 v);
    }
  }
  out.gauge("sluice_active_connections", "Open downstream connections.",
            g.active_connections.load());
  out.gauge("sluice_active_requests", "Requests being proxied now.", g.active_requests.load());
  out.counter("sluice_connections_total", "Downstream connections accepted.",
              g.connections_total.load());
  out.counter("sluice_upgrades_total", "Connections switched to a tunnel (101).",
              g.upgrades.load());
  out.counter("sluice_memory_releases_total",
              "Times free allocator memory was handed back to the kernel after a burst.",
              g.memory_releases.load());
  out.counter("sluice_memory_released_bytes_total",
              "Resident bytes those releases gave back (the fall of VmRSS).",
              g.memory_released_bytes.load());
  out.family("sluice_client_timeouts_total", Type::kCounter,
             "Requests cut (408) because the client was too slow: past --request-timeout "
             "(request_deadline), or a body under --min-body-rate (body_rate).");
  out.sample("sluice_client_timeouts_total", {{"reason", "request_deadline"}},
             g.request_deadlines.load());
  out.sample("sluice_client_timeouts_total", {{"reason", "body_rate"}}, g.slow_bodies.load());
}

void renderRouteMetrics(admin::MetricsWriter& out, const StatsRegistry<RouteStats>& routes) {
  static constexpr const char* kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  out.family("sluice_requests_total", admin::MetricsWriter::Type::kCounter,
             "Requests answered, by route and status class.");
  for (const RouteStats* rs : routes.sorted()) {
    for (std::size_t c = 0; c < 5; ++c) {
      if (const auto v = rs->by_class[c].load(std::memory_order_relaxed); v != 0) {
        out.sample("sluice_requests_total", {{"route", rs->label}, {"code", kClasses[c]}}, v);
      }
    }
  }
}

}  // namespace sluice::proxy
