#include "proxy/stats.hpp"

namespace sluice::proxy {

void Histogram::observe(std::chrono::nanoseconds d) {
  const double s = static_cast<double>(d.count()) / 1e9;
  for (std::size_t i = 0; i < kBoundsSeconds.size(); ++i) {
    if (s <= kBoundsSeconds[i]) {
      bump(buckets_[i]);
      break;
    }
  }
  bump(count_);
  bump(sum_ns_, static_cast<std::uint64_t>(d.count()));
}

int statusOf(LocalReply r) {
  static constexpr int kStatus[] = {400, 404, 408, 413, 414, 431, 502, 503, 504};
  return kStatus[static_cast<std::size_t>(r)];
}

GlobalStats& globalStats() {
  static GlobalStats stats;
  return stats;
}

void renderGlobalMetrics(admin::MetricsWriter& out) {
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
  out.gauge("sluice_active_connections", "Open downstream connections.",
            g.active_connections.load());
  out.gauge("sluice_active_requests", "Requests being proxied now.", g.active_requests.load());
  out.counter("sluice_connections_total", "Downstream connections accepted.",
              g.connections_total.load());
  out.counter("sluice_upstream_connections_total", "Upstream connections opened.",
              g.upstream_connects.load());
  out.counter("sluice_upstream_reused_total", "Requests sent on a pooled connection.",
              g.upstream_reused.load());
  out.counter("sluice_upgrades_total", "Connections switched to a tunnel (101).",
              g.upgrades.load());
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

void renderClusterMetrics(admin::MetricsWriter& out,
                          const StatsRegistry<ClusterStats>& clusters) {
  using Type = admin::MetricsWriter::Type;
  const auto sorted = clusters.sorted();
  out.family("sluice_upstream_latency_seconds", Type::kHistogram,
             "Time from request head sent upstream to response head received.");
  for (const ClusterStats* cs : sorted) {
    std::array<std::uint64_t, Histogram::kBoundsSeconds.size()> buckets{};
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      buckets[i] = cs->upstream_latency.bucket(i);
    }
    out.histogram("sluice_upstream_latency_seconds", {{"cluster", cs->name}},
                  Histogram::kBoundsSeconds, buckets, cs->upstream_latency.count(),
                  cs->upstream_latency.sumSeconds());
  }
  out.family("sluice_upstream_connect_failures_total", Type::kCounter,
             "Failed upstream connects.");
  for (const ClusterStats* cs : sorted) {
    out.sample("sluice_upstream_connect_failures_total", {{"cluster", cs->name}},
               cs->connect_failures.load());
  }
  out.family("sluice_upstream_retries_total", Type::kCounter,
             "Requests retried on another connection.");
  for (const ClusterStats* cs : sorted) {
    out.sample("sluice_upstream_retries_total", {{"cluster", cs->name}}, cs->retries.load());
  }
}

}  // namespace sluice::proxy
