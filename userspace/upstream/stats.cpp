#include "upstream/stats.hpp"

#include "upstream/pool.hpp"

namespace sluice::upstream {

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

UpstreamStats& stats() {
  static UpstreamStats s;
  return s;
}

void renderMetrics(admin::MetricsWriter& out) {
  out.counter("sluice_upstream_idle_closed_total",
              "Idle pooled connections closed because the upstream sent a byte or closed.",
              Pool::stats().closed_idle.load());
  out.counter("sluice_upstream_connections_total", "Upstream connections opened.",
              stats().connects.load());
  out.counter("sluice_upstream_reused_total", "Requests sent on a pooled connection.",
              stats().reused.load());
}

namespace {

void renderBreakerMetrics(admin::MetricsWriter& out,
                          const std::vector<const ClusterStats*>& sorted) {
  using Type = admin::MetricsWriter::Type;
  out.family("sluice_upstream_busy_connections", Type::kGauge,
             "Upstream connections busy with a request or a TCP flow, by cluster (the "
             "max-connections breaker counts these).");
  for (const ClusterStats* cs : sorted) {
    out.sample("sluice_upstream_busy_connections", {{"cluster", cs->name}}, cs->busy.value());
  }
  out.family("sluice_upstream_pending_requests", Type::kGauge,
             "Requests waiting for a new upstream connection, by cluster.");
  for (const ClusterStats* cs : sorted) {
    out.sample("sluice_upstream_pending_requests", {{"cluster", cs->name}}, cs->pending.value());
  }
  out.family("sluice_upstream_overflow_total", Type::kCounter,
             "Requests answered 503 at once by a circuit breaker, by cluster and limit.");
  for (const ClusterStats* cs : sorted) {
    out.sample("sluice_upstream_overflow_total", {{"cluster", cs->name}, {"limit", "connections"}},
               cs->overflow_connections.load());
    out.sample("sluice_upstream_overflow_total", {{"cluster", cs->name}, {"limit", "pending"}},
               cs->overflow_pending.load());
  }
}

}  // namespace

void renderClusterMetrics(admin::MetricsWriter& out, const StatsRegistry<ClusterStats>& clusters) {
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
  out.family("sluice_upstream_connect_failures_total", Type::kCounter, "Failed upstream connects.");
  for (const ClusterStats* cs : sorted) {
    out.sample("sluice_upstream_connect_failures_total", {{"cluster", cs->name}},
               cs->connect_failures.load());
  }
  out.family("sluice_upstream_retries_total", Type::kCounter,
             "Requests retried on another connection.");
  for (const ClusterStats* cs : sorted) {
    out.sample("sluice_upstream_retries_total", {{"cluster", cs->name}}, cs->retries.load());
  }
  renderBreakerMetrics(out, sorted);
}

}  // namespace sluice::upstream
