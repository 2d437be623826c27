#include "app/agent.hpp"

#include <csignal>
#include <cstdlib>
#include <thread>

#include "app/datapath_probe.hpp"
#include "app/sizing.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "k8s/api/kubeconfig.hpp"
#include "k8s/api/source.hpp"
#include "k8s/manifest.hpp"
#include "proxy/access_log.hpp"

namespace sluice::app {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

Agent::Agent(AgentConfig config)
    : config_(std::move(config)),
      signals_(control_, SIGTERM, SIGINT),
      drain_timer_(control_),
      admin_(control_,
             [this](std::string_view m, std::string_view p) { return pages_.handle(m, p); }),
      reconciler_(translateOptions(config_), snapshots_) {}

Agent::~Agent() = default;

int Agent::run() {
  auto log = log::get("agent");
  std::signal(SIGPIPE, SIG_IGN);
  raiseFileLimit();
  if (!config_.access_log.empty()) {
    auto opened = proxy::AccessLog::open(config_.access_log);
    if (!opened) {
      log->error("{}", opened.error().message());
      return 2;
    }
    access_log_ = std::move(*opened);
    proxy::setAccessLog(access_log_.get());
  }
  splicing_ =
      std::make_unique<proxy::Splicing>(config_.splice, config_.bpf_pin_dir, config_.proxy.splice,
                                        &verifyDatapathInChild, &openDatapathInChild);
  const ConnectionSizing sizing = sizeConnections(config_.max_connections);
  limit_ = std::make_unique<proxy::ConnectionLimit>(sizing.max_connections);
  log->info("at most {} client connections ({})", sizing.max_connections, sizing.why);
  if (auto made = setUpTls(); !made || !(made = makeSource())) {
    log->error("{}", made.error().message());
    return 2;
  }
  // Every (coalesced) change becomes one translate + snapshot swap. The manifest source reads
  // the directory before start() returns, so the first snapshot exists before any listener.
  source_->start([this] {
    if (!draining_) {
      reconcile();
    }
  });
  if (status_) {
    status_->start([this] { return source_applied_ready_; });
  }
  registerPages();
  if (auto started = startWorkers(); !started) {
    log->error("{}", started.error().message());
    return 1;
  }
  std::vector<std::thread> threads;
  for (auto& w : workers_) {
    threads.emplace_back([&w]() { w->run(); });
  }
  ready_ = true;
  log->info("serving HTTP on {}{} with {} workers; admin on {}; source: {}",
            net::endpointText(config_.listen_http),
            config_.listen_https ? ", HTTPS on " + net::endpointText(*config_.listen_https) : "",
            workers_.size(), net::endpointText(config_.admin), source_->kind());
  waitSignal();
  splicing_->startStaleSweep(control_.get_executor());
  std::vector<boost::asio::io_context*> worker_loops;
  for (auto& w : workers_) {
    worker_loops.push_back(&w->io());
  }
  memory_release_.start(std::move(worker_loops));
  control_.run();

  for (auto& w : workers_) {
    w->stop();
  }
  for (auto& t : threads) {
    t.join();
  }
  log->info("stopped; {} connections still open at exit",
            proxy::globalStats().active_connections.load());
  l4_.stop();
  frontdoor_.stop();
  proxy::setAccessLog(nullptr);
  access_log_.reset();  // writes out what the workers queued
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
  spdlog::shutdown();
  // Sessions cut at the deadline still own coroutine frames inside the workers' io_contexts;
  // tearing those down buys nothing at exit.
  std::quick_exit(0);
}

Result<void> Agent::makeSource() {
  if (!config_.manifests_dir.empty()) {
    source_ = std::make_unique<k8s::ManifestSource>(config_.manifests_dir, control_.get_executor(),
                                                    config_.manifest_poll);
    return success();
  }
  namespace api = k8s::api;
  auto cfg =
      config_.kubeconfig.empty() ? api::inCluster() : api::loadKubeconfig(config_.kubeconfig);
  if (!cfg) {
    return cfg.error().wrap(config_.kubeconfig.empty() ? "in-cluster config"
                                                       : "--kubeconfig " + config_.kubeconfig);
  }
  auto client = api::Client::create(control_.get_executor(), *cfg);
  if (!client) {
    return client.error().wrap(cfg->source);
  }
  api::ApiSourceOptions options;
  options.ns = config_.watch_namespace;
  options.tcp_services = config_.tcp_services;
  options.deny_source_ranges = config_.xdp.deny_source_ranges;
  auto source = std::make_unique<api::ApiSource>(*client, options);
  log::get("control")->info("watching the Kubernetes API ({}{})", cfg->source,
                            config_.watch_namespace.empty()
                                ? std::string(", all namespaces")
                                : ", namespace " + config_.watch_namespace);
  auto status =
      control::IngressStatus::create(control_.get_executor(), *cfg, source->store(),
                                     {.enabled = config_.update_status,
                                      .publish_address = config_.publish_address,
                                      .election_namespace = config_.election_namespace,
                                      .election_id = config_.election_id,
                                      .lease_duration = config_.lease_duration,
                                      .renew_deadline = config_.renew_deadline,
                                      .retry_period = config_.retry_period,
                                      .ours = {config_.ingress_class, config_.controller}});
  if (!status) {
    return status.error();
  }
  source_ = std::move(source);
  status_ = std::move(*status);
  return success();
}

Result<void> Agent::startWorkers() {
  for (unsigned i = 0; i < config_.workers; ++i) {
    workers_.push_back(std::make_unique<proxy::Worker>(i, config_.proxy, snapshots_,
                                                       splicing_->datapath(), *limit_));
    SLUICE_CHECK(workers_.back()->listen(config_.listen_http));
    if (config_.listen_https) {
      SLUICE_CHECK(workers_.back()->listen(*config_.listen_https, true));
    }
  }
  applyTcpPorts();
  SLUICE_CHECK(frontdoor_.start(config_, pages_, source_->store(), reconciler_.current()));
  SLUICE_CHECK(l4_.start(config_, pages_, reconciler_.current()));
  return admin_.start(config_.admin);
}

void Agent::registerPages() {
  pages_.setReadiness([this]() -> std::optional<std::string> {
    if (ready_ && !draining_ && !stopping_ && source_applied_ready_) {
      return std::nullopt;
    }
    return draining_   ? "draining"
           : stopping_ ? "shutting down"
           : ready_    ? "syncing with the API server"
                       : "starting";
  });
  pages_.addMetrics([this](admin::MetricsWriter& out) {
    proxy::renderGlobalMetrics(out);
    upstream::renderMetrics(out);
    limit_->renderMetrics(out);
  });
  pages_.addMetrics([this](admin::MetricsWriter& out) { reconciler_.renderMetrics(out); });
  if (access_log_) {
    pages_.addMetrics([this](admin::MetricsWriter& out) { access_log_->renderMetrics(out); });
  }
  pages_.addMetrics([this](admin::MetricsWriter& out) { splicing_->renderMetrics(out); });
  pages_.addMetrics([this](admin::MetricsWriter& out) { source_->renderMetrics(out); });
  pages_.addState([this](boost::json::object& out) {
    out["ready"] = ready_;
    out["draining"] = draining_;
  });
  pages_.addState([this](boost::json::object& out) { source_->renderState(out); });
  pages_.addState([this](boost::json::object& out) { reconciler_.renderState(out); });
  pages_.addState([this](boost::json::object& out) { splicing_->renderState(out); });
  if (status_) {
    pages_.addMetrics([this](admin::MetricsWriter& out) { status_->renderMetrics(out); });
    pages_.addState([this](boost::json::object& out) { status_->renderState(out); });
  }
  pages_.setFlows([this] { return splicing_->flows(); });
}

void Agent::reconcile() {
  // Ready only once a snapshot built from a store that reflects the whole source is served.
  const bool ready = source_->ready();
  if (reconciler_.apply(source_->store(), source_->problems())) {
    applyTcpPorts();
  }
  frontdoor_.apply(source_->store(), reconciler_.current());  // deny ConfigMap: not in snap
  l4_.apply(reconciler_.current());
  source_applied_ready_ = source_applied_ready_ || ready;
  if (status_ && ready) {
    status_->kick(reconciler_.warnings());  // Ingresses, classes or warnings may have changed
  }
}

void Agent::applyTcpPorts() {
  const auto& snap = reconciler_.current();
  if (workers_.empty() || !snap) {
    return;
  }
  std::vector<std::uint16_t> ports;
  for (const auto& route : snap->desired->tcp_routes) {
    ports.push_back(route.port);
  }
  if (ports == tcp_ports_) {
    return;
  }
  tcp_ports_ = ports;
  for (auto& w : workers_) {
    w->setTcpPorts(config_.listen_http.address(), ports);
  }
  if (!ports.empty()) {
    log::get("control")->info("TCP routes on {} port(s) of {}", ports.size(),
                              config_.listen_http.address().to_string());
  }
}

void Agent::waitSignal() {
  signals_.async_wait([this](boost::system::error_code ec, int signo) {
    if (ec || draining_) {
      return;
    }
    auto log = log::get("agent");
    if (!stopping_ && config_.shutdown_delay.count() > 0) {
      // Not ready any more, but still accepting: load balancers move away first.
      stopping_ = true;
      log->info("signal {}: /readyz fails now; draining in {} ms (deadline {} ms after that)",
                signo, config_.shutdown_delay.count(), config_.drain_timeout.count());
      drain_timer_.expires_after(config_.shutdown_delay);
      drain_timer_.async_wait([this](boost::system::error_code tec) {
        if (!tec) {
          beginDrain();
        }
      });
      waitSignal();  // a second signal drains at once
      return;
    }
    log->info("signal {}: draining (deadline {} ms)", signo, config_.drain_timeout.count());
    beginDrain();
  });
}

void Agent::beginDrain() {
  if (draining_) {
    return;
  }
  draining_ = true;
  if (status_) {
    status_->stop();  // hands the Lease over now rather than after it expires
  }
  source_->stop();  // the snapshot being served stays as it is until exit
  splicing_->stop();
  admin_.stop();
  for (auto& w : workers_) {
    w->drain();
  }
  drain_deadline_ = Clock::now() + config_.drain_timeout;
  waitDrained();
}

void Agent::waitDrained() {
  const auto active = proxy::globalStats().active_connections.load();
  const bool lease_settled = !status_ || status_->settled();  // released, or nothing to do
  if ((active == 0 && lease_settled) || Clock::now() >= drain_deadline_) {
    if (active != 0) {
      log::get("agent")->warn("drain deadline reached with {} connections open", active);
    }
    control_.stop();
    return;
  }
  drain_timer_.expires_after(std::chrono::milliseconds(20));
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) {
      waitDrained();
    }
  });
}

}  // namespace sluice::app
