// Wiring of the agent: control thread (manifest source → translate → snapshot publish, admin
// port, signals, drain) and the worker threads that serve traffic.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "admin/server.hpp"
#include "app/flags.hpp"
#include "k8s/api/leader.hpp"
#include "k8s/api/source.hpp"
#include "k8s/api/status.hpp"
#include "k8s/manifest.hpp"
#include "lb/balancer.hpp"
#include "model/desired_state.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/worker.hpp"

namespace sluice::bpf {
class SpliceDatapath;
}

namespace sluice::app {

class Agent {
public:
  explicit Agent(AgentConfig config);
  ~Agent();
  // Runs until SIGTERM/SIGINT and the drain that follows; returns the process exit code.
  int run();

private:
  // Translates the source's store and, when the resulting state differs, publishes it.
  void reload();
  // Translates `store` and publishes a new snapshot when routing changed.
  void apply(const k8s::Store& store, const std::vector<model::Warning>& source_warnings);
  std::vector<model::Warning> sourceWarnings() const;
  // Starts the API source.
  Result<void> startApiSource();
  // Starts leader election and the status writer (API source, --update-status).
  Result<void> startStatusWriter(const k8s::api::ConnectionConfig& connection);
  bool sourceReady() const;
  std::shared_ptr<const proxy::Snapshot> build(std::shared_ptr<model::DesiredState> desired);
  // Resolves --splice against what the kernel offers; logs the choice and why, once.
  void setupSplice();
  void scheduleStaleSweep();
  void applyTcpPorts();
  // SIGTERM/SIGINT: --shutdown-delay (not ready, still accepting), then beginDrain().
  void waitSignal();
  void beginDrain();
  void waitDrained();
  admin::Response handleAdmin(std::string_view method, std::string_view path);
  std::string renderMetrics() const;
  std::string renderState() const;
  std::string renderFlows() const;

  AgentConfig config_;
  boost::asio::io_context control_{1};
  boost::asio::signal_set signals_;
  boost::asio::steady_timer drain_timer_;
  boost::asio::steady_timer stale_timer_;
  admin::Server admin_;
  std::unique_ptr<k8s::Source> source_;
  k8s::api::ApiSource* api_ = nullptr;  // source_, when it is the Kubernetes API
  bool source_applied_ready_ = false;  // a snapshot from a store that was ready is published
  std::shared_ptr<k8s::api::Client> status_client_;  // the Lease and status writes
  std::shared_ptr<k8s::api::LeaderElector> elector_;
  std::shared_ptr<k8s::api::StatusWriter> status_;
  std::string status_disabled_;  // why status is not written, if it is not
  proxy::SnapshotHolder snapshots_;
  std::shared_ptr<const proxy::Snapshot> current_;
  lb::Registry endpoints_;
  proxy::StatsRegistry<proxy::RouteStats> route_stats_;
  proxy::StatsRegistry<proxy::ClusterStats> cluster_stats_;
  std::vector<std::unique_ptr<proxy::Worker>> workers_;
  std::uint64_t generation_ = 0;
  std::uint64_t reloads_ = 0;
  std::uint64_t reload_failures_ = 0;
  std::string bpf_status_;
  std::unique_ptr<bpf::SpliceDatapath> datapath_;
  std::string splice_reason_;
  std::string bpf_error_;
  std::vector<std::uint16_t> tcp_ports_;
  std::chrono::steady_clock::time_point drain_deadline_{};
  bool ready_ = false;
  bool draining_ = false;
  bool stopping_ = false;  // SIGTERM seen, in --shutdown-delay before the drain
};

}  // namespace sluice::app
