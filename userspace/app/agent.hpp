// The agent's wiring: it builds the components from the flags, connects them, and runs the
// control thread (source → reconciler → snapshot, the admin port, signals, drain) and the
// worker threads that serve traffic. Components own their work and render their own state;
// nothing here decides how a request or a config change is handled.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "admin/pages.hpp"
#include "admin/server.hpp"
#include "app/flags.hpp"
#include "app/frontdoor.hpp"
#include "app/l4.hpp"
#include "app/memory_release.hpp"
#include "common/result.hpp"
#include "control/ingress_status.hpp"
#include "control/reconciler.hpp"
#include "k8s/source.hpp"
#include "proxy/access_log.hpp"
#include "proxy/admission.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/splicing.hpp"
#include "proxy/worker.hpp"

namespace sluice::app {

class Agent {
public:
  explicit Agent(AgentConfig config);
  ~Agent();
  // Runs until SIGTERM/SIGINT and the drain that follows; returns the process exit code.
  int run();

private:
  // The source, and Ingress status when the source is the API.
  Result<void> makeSource();
  Result<void> startWorkers();
  // HTTPS: contexts, the fallback certificate, the kTLS probe (app/agent_tls.cpp).
  Result<void> setUpTls();
  void registerPages();
  // A change of the source: translate, publish, and follow the TCP-route ports.
  void reconcile();
  void applyTcpPorts();
  // SIGTERM/SIGINT: --shutdown-delay (not ready, still accepting), then beginDrain().
  void waitSignal();
  void beginDrain();
  void waitDrained();

  AgentConfig config_;
  boost::asio::io_context control_{1};
  boost::asio::signal_set signals_;
  boost::asio::steady_timer drain_timer_;
  admin::Pages pages_;
  admin::Server admin_;
  proxy::SnapshotHolder snapshots_;
  control::Reconciler reconciler_;
  std::unique_ptr<proxy::AccessLog> access_log_;  // outlives the workers that write to it
  std::unique_ptr<proxy::Splicing> splicing_;
  FrontdoorControl frontdoor_;              // XDP front door; inert without --xdp-interfaces
  L4Control l4_{control_};                  // XDP L4 fast path behind it (app/l4.cpp)
  MemoryRelease memory_release_{control_};  // free allocator pages back after bursts
  std::unique_ptr<proxy::ConnectionLimit> limit_;
  std::unique_ptr<k8s::Source> source_;
  std::unique_ptr<control::IngressStatus> status_;  // API source only
  std::vector<std::unique_ptr<proxy::Worker>> workers_;
  std::vector<std::uint16_t> tcp_ports_;
  std::chrono::steady_clock::time_point drain_deadline_{};
  bool source_applied_ready_ = false;  // a snapshot from a store that was ready is served
  bool ready_ = false;
  bool draining_ = false;
  bool stopping_ = false;  // SIGTERM seen, in --shutdown-delay before the drain
};

}  // namespace sluice::app
