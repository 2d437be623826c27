// Counters of the downstream side: requests by route and status class, the agent's own
// replies, parse errors and connections (relaxed atomics, see common/stats.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "admin/metrics.hpp"
#include "common/stats.hpp"
#include "http/normalize.hpp"
#include "http/parser.hpp"
#include "http/proxy_protocol.hpp"

namespace sluice::proxy {

// Per route label; index by status class 1xx..5xx (0..4).
struct RouteStats {
  explicit RouteStats(std::string l) : label(std::move(l)) {}
  const std::string& key() const { return label; }
  const std::string label;
  std::array<Counter, 5> by_class{};
  void count(int status) {
    int cls = status / 100 - 1;
    if (cls >= 0 && cls < 5) {
      bump(by_class[static_cast<std::size_t>(cls)]);
    }
  }
};

// Local (agent-generated) replies, by the status the agent answered with.
enum class LocalReply : std::uint8_t {
  k400,
  k404,
  k408,
  k413,
  k414,
  k431,
  k502,
  k503,
  k504,
  k403,  // sluice.dev/allow-source-ranges / deny-source-ranges refused the client
  kCount
};
int statusOf(LocalReply r);

struct GlobalStats {
  std::atomic<std::int64_t> active_connections{0};
  // The most open connections since app/memory_release.cpp last looked (it resets it).
  std::atomic<std::int64_t> connections_high{0};
  void connectionOpened() {
    const std::int64_t open = active_connections.fetch_add(1, std::memory_order_relaxed) + 1;
    if (open > connections_high.load(std::memory_order_relaxed)) {
      connections_high.store(open, std::memory_order_relaxed);  // a lost race loses a sample
    }
  }
  std::atomic<std::int64_t> active_requests{0};
  Counter connections_total{0};
  Counter requests_total{0};
  Counter upgrades{0};
  Counter request_deadlines{0};  // --request-timeout passed while the client sent its request
  Counter slow_bodies{0};        // a request body under --min-body-rate for a whole window
  std::array<Counter, static_cast<std::size_t>(LocalReply::kCount)> local_replies{};
  std::array<Counter, 32> parse_errors{};                    // by http::ParseError
  std::array<Counter, http::kPathErrorCount> path_errors{};  // by http::PathError
  // PROXY protocol headers: taken from a trusted peer, refused from an untrusted one, or bad.
  Counter proxy_headers{0};
  Counter proxy_untrusted{0};
  std::array<Counter, http::kProxyErrorCount> proxy_errors{};  // by http::ProxyError
  // Free memory handed back to the kernel after bursts (app/memory_release.cpp).
  Counter memory_releases{0};
  Counter memory_released_bytes{0};
  void localReply(LocalReply r) { bump(local_replies[static_cast<std::size_t>(r)]); }
};

// The HTTPS listener: handshakes, ClientHellos refused by reason, passthrough flows.
struct TlsStats {
  std::atomic<std::int64_t> active_handshakes{0};
  Counter handshakes{0};  // completed
  Counter resumed{0};     // completed by resuming a session (ticket)
  Counter ktls{0};        // completed with kTLS in at least one direction
  // TLS 1.3 connections after the handshake, by record layer (tls::RecordLayer): Record13's, or
  // OpenSSL's and why.
  std::array<Counter, 5> record_layer{};
  Counter failed{0};               // the handshake itself failed (protocol error, peer gone)
  Counter timeouts{0};             // ClientHello or handshake past --tls-handshake-timeout
  Counter over_capacity{0};        // refused at --max-tls-handshakes
  Counter no_certificate{0};       // no context for the SNI and no default
  Counter passthrough{0};          // connections relayed by SNI without termination
  Counter passthrough_refused{0};  // refused by the Ingress's source ranges
  Counter redirects{0};            // plain HTTP requests answered 308 to https
  std::array<Counter, 16> hello_errors{};  // by tls::Error
};
TlsStats& tlsStats();
void renderTlsMetrics(admin::MetricsWriter& out);

GlobalStats& globalStats();

// sluice_requests_*, sluice_local_replies_total, connection and upstream totals.
void renderGlobalMetrics(admin::MetricsWriter& out);

// sluice_requests_total by route and status class.
void renderRouteMetrics(admin::MetricsWriter& out, const StatsRegistry<RouteStats>& routes);

}  // namespace sluice::proxy
