#include "app/agent.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include <boost/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "bpf/splice_datapath.hpp"
#include "common/log.hpp"
#include "model/translate.hpp"
#include "proxy/flow_registry.hpp"
#include "router/route_table.hpp"

namespace sluice::app {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

std::shared_ptr<spdlog::logger> g_access_logger;

void accessLogSink(std::string_view line) { g_access_logger->info(line); }

// Enough descriptors for thousands of client plus upstream connections.
void raiseFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Prometheus label values: backslash, double quote and newline are escaped.
std::string label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

bool sameRouting(const model::DesiredState& a, const model::DesiredState& b) {
  return a.hosts == b.hosts && a.default_cluster == b.default_cluster && a.clusters == b.clusters &&
         a.tcp_routes == b.tcp_routes;
}

}  // namespace

Agent::Agent(AgentConfig config)
    : config_(std::move(config)),
      signals_(control_, SIGTERM, SIGINT),
      drain_timer_(control_),
      stale_timer_(control_),
      admin_(control_, [this](std::string_view m, std::string_view p) { return handleAdmin(m, p); }) {}

Agent::~Agent() = default;

int Agent::run() {
  auto log = log::get("agent");
  std::signal(SIGPIPE, SIG_IGN);
  raiseFileLimit();

  if (!config_.access_log.empty()) {
    try {
      g_access_logger =
          config_.access_log == "stdout"
              ? spdlog::stdout_logger_mt("access")
              : spdlog::basic_logger_mt("access", config_.access_log, false);
      g_access_logger->set_pattern("%v");
      g_access_logger->set_level(spdlog::level::info);
      // Buffered writes, flushed by a background thread: no flush syscall per request.
      spdlog::flush_every(std::chrono::seconds(1));
      proxy::Worker::setAccessLog(&accessLogSink);
    } catch (const spdlog::spdlog_ex& e) {
      log->error("--access-log {}: {}", config_.access_log, e.what());
      return 2;
    }
  }

  setupSplice();
  if (config_.manifests_dir.empty()) {
    if (auto started = startApiSource(); !started) {
      log->error("{}", started.error().message());
      return 2;
    }
  } else {
    source_ = std::make_unique<k8s::ManifestSource>(config_.manifests_dir,
                                                    control_.get_executor(),
                                                    config_.manifest_poll);
  }
  // Every (coalesced) change becomes one translate + snapshot swap. The manifest source reads
  // the directory before start() returns, so the first snapshot exists before any listener.
  source_->start([this]() {
    if (!draining_) {
      reload();
    }
  });

  for (unsigned i = 0; i < config_.workers; ++i) {
    workers_.push_back(std::make_unique<proxy::Worker>(i, config_.proxy, snapshots_));
    if (auto listening = workers_.back()->listen(config_.listen_http); !listening) {
      log->error("{}", listening.error().message());
      return 1;
    }
  }
  applyTcpPorts();
  if (auto listening = admin_.start(config_.admin); !listening) {
    log->error("{}", listening.error().message());
    return 1;
  }
  std::vector<std::thread> threads;
  threads.reserve(workers_.size());
  for (auto& w : workers_) {
    threads.emplace_back([&w]() { w->run(); });
  }
  ready_ = true;
  log->info("serving HTTP on {}:{} with {} workers; admin on {}:{}; source: {}",
            config_.listen_http.address().to_string(), config_.listen_http.port(),
            workers_.size(), config_.admin.address().to_string(), config_.admin.port(),
            config_.manifests_dir.empty() ? std::string("Kubernetes API")
                                          : "manifests in " + config_.manifests_dir);

  waitSignal();
  scheduleStaleSweep();
  control_.run();

  for (auto& w : workers_) {
    w->stop();
  }
  for (auto& t : threads) {
    t.join();
  }
  log->info("stopped; {} connections still open at exit",
            proxy::globalStats().active_connections.load());
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
  spdlog::shutdown();
  // Sessions cut at the deadline still own coroutine frames inside the workers' io_contexts;
  // tearing those down buys nothing at exit.
  std::quick_exit(0);
}

void Agent::setupSplice() {
  auto log = log::get("splice");
  // BPF is an accelerator, never a requirement: report what the kernel offers once.
  bpf_status_ = bpf::SpliceDatapath::probe();
  log->info("kernel datapath: {}", bpf_status_);
  using proxy::SpliceStrategy;
  auto& sc = config_.proxy.splice;
  const std::string& requested = config_.splice;
  if (requested == "auto" || requested == "sockmap") {
    auto opened = bpf::SpliceDatapath::open({config_.bpf_pin_dir});
    if (opened) {
      datapath_ = std::move(*opened);
      // A previous agent's flows died with it; their metadata did not.
      if (auto cleared = datapath_->clearStale(); cleared && *cleared > 0) {
        log->info("removed {} stale splice map entries left by a previous agent", *cleared);
      }
    } else {
      bpf_error_ = opened.error().message();
    }
  }
  sc.datapath = datapath_.get();
  if (requested == "copy") {
    sc.connection = sc.body = SpliceStrategy::kCopy;
    splice_reason_ = "requested: userspace copy for everything";
  } else if (requested == "pipe") {
    sc.connection = sc.body = SpliceStrategy::kPipe;
    splice_reason_ = "requested: splice(2) for connections and bodies";
  } else if (requested == "sockmap" && datapath_) {
    sc.connection = SpliceStrategy::kSockmap;
    sc.body = SpliceStrategy::kPipe;
    splice_reason_ = "requested: sockmap for whole connections (a flow whose reader falls behind "
                     "by --splice-flow-budget is reset), splice(2) for bodies";
  } else if (requested == "sockmap") {
    sc.connection = sc.body = SpliceStrategy::kPipe;
    splice_reason_ = "sockmap requested but unavailable (" + bpf_error_ +
                     "); splice(2) for connections and bodies, which needs no privilege";
  } else {
    // Measured on 6.18 (docs/benchmarks.md, bench/splice.sh): sockmap's redirect runs through a
    // kernel work queue, so it lost to copy for small messages (0.8x messages per CPU-second)
    // and to pipe for bulk; its only bounded-memory mode (hold) cannot be relayed safely. So
    // auto does not use it whatever the probe says; the probe result is still reported.
    sc.connection = SpliceStrategy::kAdaptive;
    sc.body = SpliceStrategy::kPipe;
    splice_reason_ = std::string("auto: copy for message-sized traffic, moving a direction to "
                                 "splice(2) once it streams, and splice(2) for bodies over the "
                                 "threshold; sockmap ") +
                     (datapath_ ? "is available but measured slower on this kernel"
                                : "is unavailable (" + bpf_error_ + ")");
  }
  if (!bpf_error_.empty() && requested == "sockmap") {
    log->warn("--splice=sockmap: BPF unavailable ({}); serving with splice(2) instead",
              bpf_error_);
  }
  log->info("connections by {}, bodies by {} over {} bytes; {}",
            proxy::strategyName(sc.connection), proxy::strategyName(sc.body), sc.body_threshold,
            splice_reason_);
}

void Agent::scheduleStaleSweep() {
  if (!datapath_) {
    return;
  }
  // Flows remove their own entries; this catches what a crash or a kernel-side close left.
  stale_timer_.expires_after(std::chrono::seconds(30));
  stale_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || draining_) {
      return;
    }
    if (auto cleared = datapath_->clearStale(); !cleared) {
      log::get("splice")->warn("stale entry sweep: {}", cleared.error().message());
    }
    scheduleStaleSweep();
  });
}

void Agent::applyTcpPorts() {
  if (workers_.empty() || !current_) {
    return;
  }
  std::vector<std::uint16_t> ports;
  for (const auto& route : current_->desired->tcp_routes) {
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

void Agent::reload() {
  // Ready only once a snapshot built from a store that reflects the whole source is served.
  const bool ready = source_->ready();
  apply(source_->store(), source_->problems());
  source_applied_ready_ = source_applied_ready_ || ready;
  if (status_ && ready) {
    status_->kick();  // Ingresses or their classes may have changed
  }
}

std::vector<model::Warning> Agent::sourceWarnings() const { return source_->problems(); }

bool Agent::sourceReady() const { return source_applied_ready_; }

Result<void> Agent::startApiSource() {
  namespace api = k8s::api;
  auto cfg = config_.kubeconfig.empty() ? api::inCluster() : api::loadKubeconfig(config_.kubeconfig);
  if (!cfg) {
    return cfg.error().wrap(config_.kubeconfig.empty() ? "in-cluster config"
                                                       : "--kubeconfig " + config_.kubeconfig);
  }
  const std::string where = cfg->source;
  const api::ConnectionConfig connection = *cfg;
  auto made = api::Client::create(control_.get_executor(), std::move(*cfg));
  if (!made) {
    return made.error().wrap(where);
  }
  api::ApiSourceOptions options;
  options.ns = config_.watch_namespace;
  options.tcp_services = config_.tcp_services;
  auto source = std::make_unique<api::ApiSource>(*made, options);
  api_ = source.get();
  source_ = std::move(source);
  log::get("control")->info("watching the Kubernetes API ({}{})", where,
                            config_.watch_namespace.empty()
                                ? std::string(", all namespaces")
                                : ", namespace " + config_.watch_namespace);
  return startStatusWriter(connection);
}

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

// Unique per process: two agents with one pod name (a restarted container) or host name must
// never both believe they hold the Lease.
std::string electionIdentity() {
  std::string base;
  if (const char* pod = env("POD_NAME")) {
    base = pod;
  } else {
    char host[256] = {};
    base = ::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0' ? host : "sluice";
  }
  std::random_device rd;
  char suffix[9];
  std::snprintf(suffix, sizeof suffix, "%08x", rd());
  return base + "_" + suffix;
}

}  // namespace

Result<void> Agent::startStatusWriter(const k8s::api::ConnectionConfig& connection) {
  namespace api = k8s::api;
  auto log = log::get("control");
  if (!config_.update_status) {
    status_disabled_ = "--update-status=false";
    log->info("Ingress status: not written ({})", status_disabled_);
    return success();
  }
  std::string publish = config_.publish_address;
  if (publish.empty()) {
    if (const char* host_ip = env("HOST_IP")) {
      publish = host_ip;
    }
  }
  api::StatusWriterOptions status_options;
  if (publish.empty()) {
    status_disabled_ = "no --publish-address and no HOST_IP in the environment";
    log->warn("Ingress status: not written ({})", status_disabled_);
    return success();
  }
  auto addresses = api::parsePublishAddresses(publish);
  if (!addresses) {
    return addresses.error().wrap("publish address from HOST_IP");
  }
  status_options.addresses = std::move(*addresses);
  status_options.ours = {config_.ingress_class, config_.controller};

  api::LeaderElectionOptions election;
  const char* pod_ns = env("POD_NAMESPACE");
  election.ns = !config_.election_namespace.empty() ? config_.election_namespace
                : pod_ns != nullptr                ? pod_ns
                                                   : "sluice-system";
  election.name = config_.election_id;
  election.identity = electionIdentity();
  election.lease_duration = config_.lease_duration;
  election.renew_deadline = config_.renew_deadline;
  election.retry_period = config_.retry_period;
  if (auto valid = api::validate(election); !valid) {
    return valid.error().wrap("leader election");
  }
  // A client of its own: the source's is shut down at drain, but the Lease is released then.
  api::ClientOptions client_options;
  // As client-go: half the renew deadline per request (at least 1 s), so one stalled request
  // leaves time for another before leadership would lapse.
  const auto per_request = std::max<std::chrono::milliseconds>(
      std::chrono::seconds(1),
      std::min<std::chrono::milliseconds>(config_.renew_deadline / 2, std::chrono::seconds(10)));
  client_options.connect_timeout = per_request;
  client_options.request_timeout = per_request;
  auto made = api::Client::create(control_.get_executor(), connection, client_options);
  if (!made) {
    return made.error().wrap(connection.source);
  }
  status_client_ = *made;
  status_ = std::make_shared<api::StatusWriter>(
      status_client_, api_->store(), std::move(status_options),
      [this] { return elector_ && elector_->leading() && source_applied_ready_; });
  elector_ = std::make_shared<api::LeaderElector>(status_client_, election, [this](bool leading) {
    if (leading && status_) {
      status_->kick();  // publish what changed while another agent led
    }
  });
  status_->start();
  elector_->start();
  log->info("Ingress status: publishing {} when leader of Lease {}/{} (identity {})", publish,
            election.ns, election.name, election.identity);
  return success();
}

void Agent::apply(const k8s::Store& store, const std::vector<model::Warning>& source_warnings) {
  auto log = log::get("control");
  for (const auto& w : source_warnings) {
    log->warn("{}: {}", w.object, w.message);
  }
  auto desired = std::make_shared<model::DesiredState>(
      model::translate(store,
                       {.classes = {config_.ingress_class, config_.controller},
                        .tcp_services = config_.tcp_services,
                        .reserved_ports = {config_.listen_http.port(), config_.admin.port()}}));
  ++reloads_;
  for (const auto& w : desired->warnings) {
    log->warn("{}: {}", w.object, w.message);
  }
  if (current_ && sameRouting(*current_->desired, *desired)) {
    // Same routes and endpoints: keep the snapshot (and its generation); record new warnings.
    auto copy = std::make_shared<proxy::Snapshot>(*current_);
    desired->generation = current_->generation;
    copy->desired = desired;
    current_ = copy;
    snapshots_.publish(current_);
    return;
  }
  desired->generation = ++generation_;
  current_ = build(desired);
  snapshots_.publish(current_);
  applyTcpPorts();
  endpoints_.prune();
  route_stats_.prune();
  cluster_stats_.prune();
  log->info("config generation {}: {} hosts, {} clusters, {} warnings", generation_,
            desired->hosts.size(), desired->clusters.size(),
            desired->warnings.size() + source_warnings.size());
}

std::shared_ptr<const proxy::Snapshot> Agent::build(std::shared_ptr<model::DesiredState> desired) {
  auto snap = std::make_shared<proxy::Snapshot>();
  snap->generation = desired->generation;
  snap->routes = router::RouteTable::compile(*desired);
  const auto& names = snap->routes->clusterNames();
  snap->balancers.reserve(names.size());
  for (const std::string& name : names) {
    auto it = std::lower_bound(desired->clusters.begin(), desired->clusters.end(), name,
                               [](const model::Cluster& c, const std::string& n) { return c.name < n; });
    model::Cluster empty;
    const model::Cluster& cluster =
        (it != desired->clusters.end() && it->name == name) ? *it : empty;
    // Unchanged clusters keep their balancer (and so its round-robin position).
    std::shared_ptr<lb::Balancer> balancer;
    if (current_) {
      const auto& old_names = current_->routes->clusterNames();
      auto oit = std::find(old_names.begin(), old_names.end(), name);
      if (oit != old_names.end()) {
        const auto idx = static_cast<std::size_t>(oit - old_names.begin());
        const auto& old_clusters = current_->desired->clusters;
        auto ocl = std::find_if(old_clusters.begin(), old_clusters.end(),
                                [&](const model::Cluster& c) { return c.name == name; });
        if (ocl != old_clusters.end() && *ocl == cluster) {
          balancer = current_->balancers[idx];
        }
      }
    }
    if (!balancer) {
      std::vector<lb::EndpointPtr> eps;
      eps.reserve(cluster.endpoints.size());
      for (const auto& ep : cluster.endpoints) {
        eps.push_back(endpoints_.endpoint(ep));
      }
      balancer = std::make_shared<lb::Balancer>(cluster.lb, std::move(eps));
    }
    snap->balancers.push_back(std::move(balancer));
    snap->cluster_stats.push_back(cluster_stats_.get(name));
  }
  for (const std::string& l : snap->routes->routeLabels()) {
    snap->route_stats.push_back(route_stats_.get(l));
  }
  for (const auto& route : desired->tcp_routes) {
    auto it = std::find(names.begin(), names.end(), route.cluster);
    if (it != names.end()) {
      snap->tcp_routes.emplace_back(route.port, static_cast<std::uint32_t>(it - names.begin()));
    }
  }
  snap->desired = std::move(desired);
  return snap;
}

void Agent::beginDrain() {
  if (draining_) {
    return;
  }
  draining_ = true;
  if (status_) {
    status_->stop();
  }
  if (elector_) {
    elector_->stop(true);  // hand the Lease over now rather than after it expires
  }
  source_->stop();  // the snapshot being served stays as it is until exit
  admin_.stop();
  for (auto& w : workers_) {
    w->drain();
  }
  drain_deadline_ = Clock::now() + config_.drain_timeout;
  waitDrained();
}

void Agent::waitDrained() {
  const auto active = proxy::globalStats().active_connections.load();
  const bool lease_settled = !elector_ || elector_->settled();  // released, or nothing to do
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

admin::Response Agent::handleAdmin(std::string_view method, std::string_view path) {
  if (method != "GET" && method != "HEAD") {
    return {405, "text/plain; charset=utf-8", "method not allowed\n"};
  }
  if (path == "/healthz") {
    return {200, "text/plain; charset=utf-8", "ok\n"};
  }
  if (path == "/readyz") {
    if (ready_ && !draining_ && !stopping_ && sourceReady()) {
      return {200, "text/plain; charset=utf-8", "ready\n"};
    }
    return {503, "text/plain; charset=utf-8",
            draining_   ? "draining\n"
            : stopping_ ? "shutting down\n"
            : ready_    ? "syncing with the API server\n"
                        : "starting\n"};
  }
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", renderMetrics()};
  }
  if (path == "/debug/state") {
    return {200, "application/json", renderState()};
  }
  if (path == "/debug/flows") {
    return {200, "application/json", renderFlows()};
  }
  return {404, "text/plain; charset=utf-8", "not found\n"};
}

std::string Agent::renderMetrics() const {
  const auto& g = proxy::globalStats();
  std::string out;
  out.reserve(16384);
  auto line = [&out](std::string_view name, std::string_view labels, auto value) {
    out.append(name);
    if (!labels.empty()) {
      out.append("{").append(labels).append("}");
    }
    out.append(" ").append(std::to_string(value)).append("\n");
  };
  auto help = [&out](std::string_view name, std::string_view type, std::string_view text) {
    out.append("# HELP ").append(name).append(" ").append(text).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  };

  help("sluice_requests_total", "counter", "Requests answered, by route and status class.");
  static constexpr const char* kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  std::vector<const proxy::RouteStats*> routes;
  for (const auto& [key, rs] : route_stats_.items()) {
    routes.push_back(rs.get());
  }
  std::sort(routes.begin(), routes.end(),
            [](auto* a, auto* b) { return a->label < b->label; });
  for (const auto* rs : routes) {
    for (std::size_t c = 0; c < 5; ++c) {
      const auto v = rs->by_class[c].load(std::memory_order_relaxed);
      if (v != 0) {
        line("sluice_requests_total",
             "route=\"" + label(rs->label) + "\",code=\"" + kClasses[c] + "\"", v);
      }
    }
  }
  help("sluice_local_replies_total", "counter",
       "Replies the agent generated itself (errors), by status.");
  for (std::size_t i = 0; i < g.local_replies.size(); ++i) {
    line("sluice_local_replies_total",
         "code=\"" + std::to_string(proxy::statusOf(static_cast<proxy::LocalReply>(i))) + "\"",
         g.local_replies[i].load());
  }
  help("sluice_request_parse_errors_total", "counter",
       "Requests rejected by the strict HTTP parser, by reason.");
  for (std::size_t i = 1; i < g.parse_errors.size(); ++i) {
    const auto v = g.parse_errors[i].load();
    if (v != 0) {
      line("sluice_request_parse_errors_total",
           "reason=\"" + std::string(http::errorName(static_cast<http::ParseError>(i))) + "\"", v);
    }
  }
  help("sluice_upstream_latency_seconds", "histogram",
       "Time from request head sent upstream to response head received.");
  std::vector<const proxy::ClusterStats*> clusters;
  for (const auto& [key, cs] : cluster_stats_.items()) {
    clusters.push_back(cs.get());
  }
  std::sort(clusters.begin(), clusters.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (const auto* cs : clusters) {
    const std::string cl = "cluster=\"" + label(cs->name) + "\"";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < proxy::Histogram::kBoundsSeconds.size(); ++i) {
      cumulative += cs->upstream_latency.bucket(i);
      char le[32];
      std::snprintf(le, sizeof le, "%g", proxy::Histogram::kBoundsSeconds[i]);
      line("sluice_upstream_latency_seconds_bucket", cl + ",le=\"" + le + "\"", cumulative);
    }
    line("sluice_upstream_latency_seconds_bucket", cl + ",le=\"+Inf\"",
         cs->upstream_latency.count());
    out.append("sluice_upstream_latency_seconds_sum{").append(cl).append("} ");
    out.append(std::to_string(cs->upstream_latency.sumSeconds())).append("\n");
    line("sluice_upstream_latency_seconds_count", cl, cs->upstream_latency.count());
  }
  help("sluice_upstream_connect_failures_total", "counter", "Failed upstream connects.");
  for (const auto* cs : clusters) {
    line("sluice_upstream_connect_failures_total", "cluster=\"" + label(cs->name) + "\"",
         cs->connect_failures.load());
  }
  help("sluice_upstream_retries_total", "counter", "Requests retried on another connection.");
  for (const auto* cs : clusters) {
    line("sluice_upstream_retries_total", "cluster=\"" + label(cs->name) + "\"",
         cs->retries.load());
  }
  help("sluice_active_connections", "gauge", "Open downstream connections.");
  line("sluice_active_connections", "", g.active_connections.load());
  help("sluice_active_requests", "gauge", "Requests being proxied now.");
  line("sluice_active_requests", "", g.active_requests.load());
  help("sluice_connections_total", "counter", "Downstream connections accepted.");
  line("sluice_connections_total", "", g.connections_total.load());
  help("sluice_upstream_connections_total", "counter", "Upstream connections opened.");
  line("sluice_upstream_connections_total", "", g.upstream_connects.load());
  help("sluice_upstream_reused_total", "counter", "Requests sent on a pooled connection.");
  line("sluice_upstream_reused_total", "", g.upstream_reused.load());
  help("sluice_upgrades_total", "counter", "Connections switched to a tunnel (101).");
  line("sluice_upgrades_total", "", g.upgrades.load());
  const auto& sp = proxy::spliceStats();
  help("sluice_splice_flows_total", "counter",
       "Connections handed off after routing (Upgrade tunnels, TCP routes), by strategy.");
  for (auto s : {proxy::SpliceStrategy::kSockmap, proxy::SpliceStrategy::kPipe,
                 proxy::SpliceStrategy::kCopy, proxy::SpliceStrategy::kAdaptive}) {
    line("sluice_splice_flows_total", "strategy=\"" + std::string(proxy::strategyName(s)) + "\"",
         sp.flows_total[static_cast<std::size_t>(s)].load());
  }
  const struct {
    const char* name;
    const char* type;
    const char* text;
    std::int64_t value;
  } splice_scalars[] = {
      {"sluice_splice_active_flows", "gauge", "Handed-off connections open now.",
       sp.active_flows.load()},
      {"sluice_splice_fallbacks_total", "counter",
       "sockmap pairs that could not be armed and were relayed with splice(2).",
       static_cast<std::int64_t>(sp.fallbacks.load())},
      {"sluice_splice_held_total", "counter",
       "sockmap flows reset because a reader fell behind by the flow budget.",
       static_cast<std::int64_t>(sp.held.load())},
      {"sluice_splice_integrity_resets_total", "counter",
       "sockmap flows reset because the kernel handled more bytes than the socket received.",
       static_cast<std::int64_t>(sp.integrity.load())},
      {"sluice_splice_upgraded_total", "counter",
       "adaptive flow directions moved from copy to splice(2) once they streamed.",
       static_cast<std::int64_t>(sp.upgraded.load())},
      {"sluice_splice_bodies_total", "counter", "HTTP bodies moved with splice(2).",
       static_cast<std::int64_t>(sp.body_splices.load())},
      {"sluice_splice_body_bytes_total", "counter", "Bytes of HTTP bodies moved with splice(2).",
       static_cast<std::int64_t>(sp.body_bytes.load())},
  };
  for (const auto& m : splice_scalars) {
    help(m.name, m.type, m.text);
    line(m.name, "", m.value);
  }
  if (datapath_) {
    if (auto verdicts = datapath_->verdictCounters(); verdicts) {
      help("sluice_splice_verdicts_total", "counter",
           "sk_skb verdicts of the splice program, by outcome.");
      for (std::size_t i = 0; i < verdicts->size(); ++i) {
        line("sluice_splice_verdicts_total",
             "outcome=\"" + std::string(bpf::kReasonLabels[i]) + "\"", (*verdicts)[i]);
      }
    }
  }
  help("sluice_config_generation", "gauge", "Generation of the routing snapshot served.");
  line("sluice_config_generation", "", generation_);
  help("sluice_config_reloads_total", "counter", "Manifest changes translated.");
  line("sluice_config_reloads_total", "", reloads_);
  help("sluice_rejected_objects", "gauge",
       "Objects or files skipped or partly ignored in the current state.");
  line("sluice_rejected_objects", "",
       sourceWarnings().size() + (current_ ? current_->desired->warnings.size() : 0));
  if (api_) {
    const auto stats = api_->stats();
    help("sluice_k8s_events_total", "counter", "Watch events by kind and type.");
    for (const auto& k : stats.kinds) {
      const std::string kind = "kind=\"" + label(k.kind) + "\"";
      line("sluice_k8s_events_total", kind + ",type=\"ADDED\"", k.stats.added);
      line("sluice_k8s_events_total", kind + ",type=\"MODIFIED\"", k.stats.modified);
      line("sluice_k8s_events_total", kind + ",type=\"DELETED\"", k.stats.deleted);
      line("sluice_k8s_events_total", kind + ",type=\"BOOKMARK\"", k.stats.bookmarks);
      line("sluice_k8s_events_total", kind + ",type=\"ERROR\"", k.stats.error_events);
    }
    help("sluice_k8s_relists_total", "counter", "Full lists after the first (410 Gone, errors).");
    for (const auto& k : stats.kinds) {
      line("sluice_k8s_relists_total", "kind=\"" + label(k.kind) + "\"", k.stats.relists);
    }
    help("sluice_k8s_watch_restarts_total", "counter", "Watches restarted after they ended.");
    for (const auto& k : stats.kinds) {
      line("sluice_k8s_watch_restarts_total", "kind=\"" + label(k.kind) + "\"",
           k.stats.watch_restarts);
    }
    help("sluice_k8s_synced", "gauge", "1 once the kind was listed successfully.");
    for (const auto& k : stats.kinds) {
      line("sluice_k8s_synced", "kind=\"" + label(k.kind) + "\"", k.stats.synced ? 1 : 0);
    }
    {
      // The source's client (lists, watches) and the leader's (Lease, status).
      std::vector<std::pair<const char*, k8s::api::ClientStats>> clients{{"source", stats.client}};
      if (status_client_) {
        clients.emplace_back("leader", status_client_->stats());
      }
      help("sluice_k8s_api_requests_total", "counter", "Requests to the API server, by client.");
      for (const auto& [name, cs] : clients) {
        line("sluice_k8s_api_requests_total", std::string("client=\"") + name + "\"", cs.requests);
      }
      help("sluice_k8s_api_connections_total", "counter",
           "TLS connections opened to the API server, by client (requests reuse kept-alive ones).");
      for (const auto& [name, cs] : clients) {
        line("sluice_k8s_api_connections_total", std::string("client=\"") + name + "\"",
             cs.connections);
      }
    }
    if (elector_) {
      const auto& ls = elector_->stats();
      help("sluice_k8s_leader", "gauge", "1 while this agent holds the leader-election Lease.");
      line("sluice_k8s_leader", "", elector_->leading() ? 1 : 0);
      help("sluice_k8s_leader_acquisitions_total", "counter", "Times this agent became leader.");
      line("sluice_k8s_leader_acquisitions_total", "", ls.acquisitions);
      help("sluice_k8s_leader_losses_total", "counter",
           "Times leadership ended other than by shutdown.");
      line("sluice_k8s_leader_losses_total", "", ls.losses);
    }
    if (status_) {
      const auto& ss = status_->stats();
      help("sluice_k8s_status_updates_total", "counter",
           "Ingress status writes by result (ok, conflict, error).");
      line("sluice_k8s_status_updates_total", "result=\"ok\"", ss.writes);
      line("sluice_k8s_status_updates_total", "result=\"conflict\"", ss.conflicts);
      line("sluice_k8s_status_updates_total", "result=\"error\"", ss.failures);
    }
    help("sluice_k8s_last_sync_timestamp_seconds", "gauge",
         "Unix time of the last successful list or event, by kind.");
    for (const auto& k : stats.kinds) {
      line("sluice_k8s_last_sync_timestamp_seconds", "kind=\"" + label(k.kind) + "\"",
           std::chrono::duration_cast<std::chrono::seconds>(
               k.stats.last_sync.time_since_epoch())
               .count());
    }
  }
  return out;
}

std::string Agent::renderFlows() const {
  using proxy::SpliceStrategy;
  json::array flows;
  for (const auto& f : proxy::flowRegistry().snapshot()) {
    const auto strategy = static_cast<SpliceStrategy>(f.strategy);
    std::string name(proxy::strategyName(strategy));
    std::uint64_t in = f.bytes_in;
    std::uint64_t out = f.bytes_out;
    if (strategy == SpliceStrategy::kAdaptive) {
      // Which relay each direction uses now: "adaptive(up:pipe,down:copy)".
      name += std::string("(up:") + ((f.piped & 1) != 0 ? "pipe" : "copy") +
              ",down:" + ((f.piped & 2) != 0 ? "pipe" : "copy") + ")";
    } else if (strategy == SpliceStrategy::kSockmap && datapath_) {
      // The kernel moved these bytes; the agent only wrote what it held before arming.
      if (auto st = datapath_->stats(f.client_cookie); st) {
        in += st->bytes;
      }
      if (auto st = datapath_->stats(f.backend_cookie); st) {
        out += st->bytes;
      }
    }
    json::object o{{"flow_id", f.id},
                   {"client", f.client},
                   {"backend", f.backend},
                   {"strategy", name},
                   {"bytes_in", in},
                   {"bytes_out", out},
                   {"age_seconds",
                    std::chrono::duration_cast<std::chrono::seconds>(f.age).count()}};
    if (f.client_cookie != 0) {
      o["client_cookie"] = f.client_cookie;
    }
    flows.push_back(std::move(o));
  }
  return json::serialize(flows);
}

std::string Agent::renderState() const {
  json::object root;
  root["generation"] = generation_;
  root["ready"] = ready_;
  root["draining"] = draining_;
  root["manifests"] = config_.manifests_dir;
  if (api_) {
    root["source"] = "kubernetes-api";
    root["synced"] = api_->ready();
    root["endpoint_slice_version"] = api_->stats().endpoint_slice_version;
    json::object status{{"enabled", status_ != nullptr}};
    if (status_) {
      json::array published;
      for (const auto& a : status_->options().addresses) {
        published.push_back(json::string(a.ip.empty() ? a.hostname : a.ip));
      }
      const auto& ls = elector_->stats();
      const auto& ss = status_->stats();
      status["publish"] = std::move(published);
      status["lease"] = elector_->options().ns + "/" + elector_->options().name;
      status["identity"] = elector_->options().identity;
      status["leader"] = elector_->leading();
      status["holder"] = ls.holder;
      status["writes"] = ss.writes;
      status["last_error"] = !ss.last_error.empty() ? ss.last_error : ls.last_error;
    } else {
      status["reason"] = status_disabled_;
    }
    root["ingress_status"] = std::move(status);
  } else {
    root["source"] = "manifests";
  }
  root["ingress_class"] = config_.ingress_class;
  root["kernel_datapath"] = bpf_status_;
  const auto& sc = config_.proxy.splice;
  const auto& sp = proxy::spliceStats();
  json::object splice{{"requested", config_.splice},
                      {"strategy", proxy::strategyName(sc.connection)},
                      {"body_strategy", proxy::strategyName(sc.body)},
                      {"body_threshold", sc.body_threshold},
                      {"flow_budget", sc.flow_budget},
                      {"reason", splice_reason_},
                      {"pin_dir", datapath_ ? datapath_->pinRoot() : std::string()},
                      {"active_flows", sp.active_flows.load()},
                      {"fallbacks", sp.fallbacks.load()},
                      {"held", sp.held.load()},
                      {"upgraded", sp.upgraded.load()},
                      {"integrity_resets", sp.integrity.load()}};
  if (!bpf_error_.empty()) {
    splice["bpf_error"] = bpf_error_;
  }
  root["splice"] = std::move(splice);
  // ingressctl status reads this field.
  root["splice_strategy"] = proxy::strategyName(sc.connection);
  json::array warnings;
  auto add_warnings = [&warnings](const std::vector<model::Warning>& ws) {
    for (const auto& w : ws) {
      warnings.push_back(json::object{{"object", w.object}, {"message", w.message}});
    }
  };
  add_warnings(sourceWarnings());
  if (!current_) {
    root["warnings"] = std::move(warnings);
    return json::serialize(root);
  }
  const model::DesiredState& d = *current_->desired;
  add_warnings(d.warnings);
  json::array hosts;
  for (const auto& h : d.hosts) {
    json::array paths;
    for (const auto& p : h.paths) {
      paths.push_back(json::object{{"path", p.path},
                                   {"type", model::pathTypeName(p.type)},
                                   {"cluster", p.cluster},
                                   {"ingress", p.ingress}});
    }
    json::object host{{"host", h.host.empty() ? "*" : h.host}, {"paths", std::move(paths)}};
    if (h.default_cluster) {
      host["default_backend"] = *h.default_cluster;
    }
    hosts.push_back(std::move(host));
  }
  root["hosts"] = std::move(hosts);
  if (d.default_cluster) {
    root["default_backend"] = *d.default_cluster;
  }
  const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          Clock::now().time_since_epoch())
                          .count();
  json::array clusters;
  const auto& names = current_->routes->clusterNames();
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& bal = *current_->balancers[i];
    json::array eps;
    for (const auto& ep : bal.endpoints()) {
      eps.push_back(json::object{{"address", ep->address()},
                                 {"port", ep->port()},
                                 {"active_requests", ep->active()},
                                 {"ejected", ep->ejected(now_ns)},
                                 {"consecutive_failures", ep->consecutiveFailures()}});
    }
    clusters.push_back(json::object{
        {"name", names[i]},
        {"load_balance", bal.policy() == model::LbPolicy::kLeastRequest ? "least-request"
                                                                         : "round-robin"},
        {"endpoints", std::move(eps)}});
  }
  root["clusters"] = std::move(clusters);
  json::array tcp_routes;
  for (const auto& r : d.tcp_routes) {
    tcp_routes.push_back(json::object{{"port", r.port}, {"cluster", r.cluster}});
  }
  root["tcp_routes"] = std::move(tcp_routes);
  root["warnings"] = std::move(warnings);
  return json::serialize(root);
}

}  // namespace sluice::app
