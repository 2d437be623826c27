// The control path's last step: store → translate() → DesiredState → a compiled, immutable
// proxy::Snapshot, published atomically to the workers. Balancers of unchanged clusters and the
// per-route and per-cluster counters are carried over from one snapshot to the next, so a config
// change resets neither round-robin positions nor metrics.
//
// Runs on the control thread; workers only read what publish() hands them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <boost/json/object.hpp>

#include "admin/metrics.hpp"
#include "k8s/problem.hpp"
#include "k8s/store.hpp"
#include "lb/balancer.hpp"
#include "model/desired_state.hpp"
#include "model/translate.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/stats.hpp"
#include "tls/context.hpp"

namespace sluice::control {

class Reconciler {
public:
  Reconciler(model::TranslateOptions options, proxy::SnapshotHolder& snapshots);

  // Translates `store` and publishes a new snapshot when routing changed; the same routing keeps
  // its snapshot and generation and only replaces the warnings. Every problem is logged. Returns
  // true when a new generation was published.
  bool apply(const k8s::Store& store, std::vector<k8s::Problem> source_problems);

  // Serve HTTPS: snapshots get a TlsTable with one context per certificate from `factory`;
  // `fallback` serves hosts without a usable certificate when --default-ssl-certificate gives
  // none. Call before the first apply().
  void enableTls(std::unique_ptr<tls::ContextFactory> factory, tls::CertificatePtr fallback);

  // Every warning that holds now: the source's problems, then translate()'s.
  std::vector<k8s::Problem> warnings() const;

  // The snapshot being served (null before the first apply).
  const std::shared_ptr<const proxy::Snapshot>& current() const { return current_; }
  std::uint64_t generation() const { return generation_; }

  // sluice_config_*, sluice_rejected_objects, sluice_endpoints_refused, and the route and
  // cluster counters.
  void renderMetrics(admin::MetricsWriter& out) const;
  // "generation", "ingress_class", "hosts", "default_backend", "clusters", "tcp_routes" and
  // "warnings" (the source's problems and translate()'s).
  void renderState(boost::json::object& out) const;

private:
  std::shared_ptr<const proxy::Snapshot> build(std::shared_ptr<model::DesiredState> desired);
  std::shared_ptr<lb::Balancer> balancerFor(const model::Cluster& cluster);
  std::shared_ptr<const proxy::TlsTable> buildTls(const model::DesiredState& desired,
                                                  const std::vector<std::string>& cluster_names);
  void renderTlsState(boost::json::object& root) const;

  const model::TranslateOptions options_;
  proxy::SnapshotHolder& snapshots_;
  std::shared_ptr<const proxy::Snapshot> current_;
  std::vector<k8s::Problem> source_problems_;
  lb::Registry endpoints_;
  StatsRegistry<proxy::RouteStats> route_stats_;
  StatsRegistry<upstream::ClusterStats> cluster_stats_;
  std::uint64_t generation_ = 0;
  std::uint64_t reloads_ = 0;
  std::unique_ptr<tls::ContextFactory> tls_factory_;
  tls::CertificatePtr tls_fallback_;
};

}  // namespace sluice::control
