// Ingress status for the API source: one agent, elected through a Lease, writes
// status.loadBalancer of our class's Ingresses, and Warning Events for the translation warnings
// about them. This component wires the elector, the status writer and the event recorder from
// the agent's settings and the pod's environment (POD_NAME, POD_NAMESPACE, HOST_IP), and
// renders what they do.
//
// Runs on the control thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>

#include "admin/metrics.hpp"
#include "common/result.hpp"
#include "control/event_recorder.hpp"
#include "control/leader.hpp"
#include "control/status_writer.hpp"
#include "k8s/api/client.hpp"
#include "k8s/ingress_class.hpp"
#include "k8s/problem.hpp"
#include "k8s/store.hpp"

namespace sluice::control {

struct IngressStatusOptions {
  bool enabled = true;             // --update-status
  std::string publish_address;     // comma-separated; "" = HOST_IP from the environment
  std::string election_namespace;  // "" = POD_NAMESPACE, else sluice-system
  std::string election_id = "sluice-ingress-leader";
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds renew_deadline{10'000};
  std::chrono::milliseconds retry_period{2'000};
  k8s::ClassFilter ours;
};

class IngressStatus {
public:
  // Validates the options; a disabled status (the flag, or no address to publish) is no error:
  // enabled() says so and why.
  static Result<std::unique_ptr<IngressStatus>> create(boost::asio::any_io_executor executor,
                                                       const k8s::api::ConnectionConfig& api,
                                                       const k8s::Store& store,
                                                       IngressStatusOptions options);
  ~IngressStatus();

  // `may_publish`: the agent serves a snapshot from a store that was ready (nothing is written
  // from a half-synced view).
  void start(std::function<bool()> may_publish);
  // Ingresses or their classes may have changed; `warnings` are those that hold now (the
  // reconciler's), written as Events by the leader.
  void kick(std::vector<k8s::Problem> warnings);
  // Stops writing; hands the Lease over now rather than after it expires.
  void stop();
  // The Lease is released (or there was none to release).
  bool settled() const;
  bool enabled() const { return writer_ != nullptr; }

  // sluice_k8s_leader*, sluice_k8s_status_updates_total, sluice_events_*, and the leader
  // client's requests.
  void renderMetrics(admin::MetricsWriter& out) const;
  // "ingress_status": enabled, and the Lease, identity, leader and events, or why it is off.
  void renderState(boost::json::object& out) const;

private:
  IngressStatus() = default;

  std::string disabled_;                      // why status is not written, if it is not
  std::shared_ptr<k8s::api::Client> client_;  // its own: the source's is shut down at drain
  std::shared_ptr<LeaderElector> elector_;
  std::shared_ptr<StatusWriter> writer_;
  std::shared_ptr<EventRecorder> events_;
  std::function<bool()> may_publish_;
};

}  // namespace sluice::control
