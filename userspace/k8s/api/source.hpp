// The Kubernetes API as a source: informers for every kind Sluice reads, feeding one Store (the
// same Store and decoder the manifest source uses), with readiness, warnings, metrics and a
// coalesced "changed" signal.
//
// Threading: everything (construction excepted) runs on the client's executor, normally the
// agent's control thread; start(), stop() and every accessor must be called from there.
//
// Wiring in the agent (control thread owns an io_context `ioc`):
//   auto cfg = kubeconfig.empty() ? api::inCluster() : api::loadKubeconfig(kubeconfig);
//   auto client = api::Client::create(ioc.get_executor(), std::move(*cfg));
//   api::ApiSource source(*client, {.ns = flag_namespace, .tcp_services = flag_tcp});
//   source.start([&] { rebuild(source.store(), source.problems()); });
//   /readyz: source.ready();  /metrics: source.stats();  shutdown: source.stop().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "k8s/api/client.hpp"
#include "k8s/api/informer.hpp"
#include "k8s/source.hpp"
#include "k8s/store.hpp"

namespace sluice::k8s::api {

struct ApiSourceOptions {
  std::string ns;            // "" = all namespaces (IngressClass is always cluster-wide)
  std::string tcp_services;  // "namespace/name" of the TCP services ConfigMap; "" = none
  // "namespace/name" of the XDP front door's deny-list ConfigMap; "" = none
  std::string deny_source_ranges;
  InformerOptions informer;
  // A burst of events produces one on_changed call, `quiet` after the last event, but at most
  // `max_delay` after the first.
  std::chrono::milliseconds quiet{100};
  std::chrono::milliseconds max_delay{1000};
};

struct KindStats {
  std::string kind;  // "Ingress", ...
  InformerStats stats;
};

struct ApiSourceStats {
  std::vector<KindStats> kinds;
  std::string endpoint_slice_version;  // "v1", "v1beta1", "" before discovery or if not served
  std::uint64_t notifications = 0;     // coalesced on_changed calls
  std::uint64_t changes = 0;           // raw changes before coalescing
  ClientStats client;
};

class ApiSource : public Source {
public:
  ApiSource(std::shared_ptr<Client> client, ApiSourceOptions options);
  ~ApiSource() override;  // stop()s
  ApiSource(const ApiSource&) = delete;
  ApiSource& operator=(const ApiSource&) = delete;

  // Discovery, then every informer; returns at once.
  void start(std::function<void()> on_change) override;
  // No further store changes or on_change calls; I/O ends promptly.
  void stop() override;

  const Store& store() const override;
  // Current problems: objects that did not decode, lists/watches failing, bad options.
  std::vector<Problem> problems() const override;
  // True once discovery finished and every informer listed successfully at least once.
  bool ready() const override;
  std::string kind() const override { return "kubernetes-api"; }
  // sluice_k8s_events_total and the other informer counters, and the source client's requests.
  void renderMetrics(admin::MetricsWriter& out) const override;
  void renderState(boost::json::object& out) const override;
  ApiSourceStats stats() const;

private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace sluice::k8s::api
