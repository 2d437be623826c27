#include "control/reconciler.hpp"

#include <algorithm>
#include <chrono>

#include "common/log.hpp"
#include "common/net.hpp"
#include "router/route_table.hpp"

namespace sluice::control {

namespace json = boost::json;

namespace {

bool sameRouting(const model::DesiredState& a, const model::DesiredState& b) {
  return a.hosts == b.hosts && a.default_cluster == b.default_cluster && a.clusters == b.clusters &&
         a.tcp_routes == b.tcp_routes && a.tls_hosts == b.tls_hosts &&
         a.passthrough == b.passthrough && a.default_certificate == b.default_certificate;
}

json::array problemsJson(const std::vector<k8s::Problem>& a, const std::vector<k8s::Problem>& b) {
  json::array out;
  for (const auto* list : {&a, &b}) {
    for (const auto& p : *list) {
      out.push_back(json::object{{"object", p.object}, {"message", p.message}});
    }
  }
  return out;
}

}  // namespace

Reconciler::Reconciler(model::TranslateOptions options, proxy::SnapshotHolder& snapshots)
    : options_(std::move(options)), snapshots_(snapshots) {}

bool Reconciler::apply(const k8s::Store& store, std::vector<k8s::Problem> source_problems) {
  auto log = log::get("control");
  for (const auto& w : source_problems) {
    log->warn("{}: {}", w.object, w.message);
  }
  source_problems_ = std::move(source_problems);
  auto desired = std::make_shared<model::DesiredState>(model::translate(store, options_));
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
    return false;
  }
  desired->generation = ++generation_;
  current_ = build(desired);
  snapshots_.publish(current_);
  endpoints_.prune();
  route_stats_.prune();
  cluster_stats_.prune();
  log->info("config generation {}: {} hosts, {} clusters, {} warnings", generation_,
            desired->hosts.size(), desired->clusters.size(),
            desired->warnings.size() + source_problems_.size());
  return true;
}

std::vector<k8s::Problem> Reconciler::warnings() const {
  std::vector<k8s::Problem> out = source_problems_;
  if (current_) {
    const auto& translated = current_->desired->warnings;
    out.insert(out.end(), translated.begin(), translated.end());
  }
  return out;
}

std::shared_ptr<lb::Balancer> Reconciler::balancerFor(const model::Cluster& cluster) {
  // Unchanged clusters keep their balancer (and so its round-robin position).
  if (current_) {
    const auto& old_names = current_->routes->clusterNames();
    const auto& old_clusters = current_->desired->clusters;
    auto idx = std::find(old_names.begin(), old_names.end(), cluster.name);
    auto old = std::find_if(old_clusters.begin(), old_clusters.end(),
                            [&](const model::Cluster& c) { return c.name == cluster.name; });
    if (idx != old_names.end() && old != old_clusters.end() && *old == cluster) {
      return current_->balancers[static_cast<std::size_t>(idx - old_names.begin())];
    }
  }
  std::vector<lb::EndpointPtr> eps;
  eps.reserve(cluster.endpoints.size());
  for (const auto& ep : cluster.endpoints) {
    eps.push_back(endpoints_.endpoint(ep));
  }
  return std::make_shared<lb::Balancer>(cluster.lb, std::move(eps));
}

std::shared_ptr<const proxy::Snapshot> Reconciler::build(
    std::shared_ptr<model::DesiredState> desired) {
  auto snap = std::make_shared<proxy::Snapshot>();
  snap->generation = desired->generation;
  snap->routes = router::RouteTable::compile(*desired);
  const auto& names = snap->routes->clusterNames();
  snap->balancers.reserve(names.size());
  for (const std::string& name : names) {
    auto it =
        std::lower_bound(desired->clusters.begin(), desired->clusters.end(), name,
                         [](const model::Cluster& c, const std::string& n) { return c.name < n; });
    model::Cluster empty;
    empty.name = name;
    const model::Cluster& cluster = it != desired->clusters.end() && it->name == name ? *it : empty;
    snap->balancers.push_back(balancerFor(cluster));
    snap->cluster_stats.push_back(cluster_stats_.get(name));
    snap->cluster_options.push_back(cluster.options);
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
  if (tls_factory_) {
    snap->tls = buildTls(*desired, names);
  }
  snap->desired = std::move(desired);
  return snap;
}

void Reconciler::enableTls(std::unique_ptr<tls::ContextFactory> factory,
                           tls::CertificatePtr fallback) {
  tls_factory_ = std::move(factory);
  tls_fallback_ = std::move(fallback);
}

std::shared_ptr<const proxy::TlsTable> Reconciler::buildTls(
    const model::DesiredState& desired, const std::vector<std::string>& cluster_names) {
  auto log = log::get("control");
  auto table = std::make_shared<proxy::TlsTable>();
  const tls::CertificatePtr& fallback =
      desired.default_certificate ? desired.default_certificate : tls_fallback_;
  auto context = [&](const tls::CertificatePtr& cert) -> tls::ContextPtr {
    Result<tls::ContextPtr> ctx = tls_factory_->context(cert);
    if (!ctx) {
      log->warn("TLS: {}", ctx.error().message());
      return nullptr;
    }
    return *ctx;
  };
  if (fallback) {
    table->setDefault(context(fallback));
  }
  for (const model::TlsHost& h : desired.tls_hosts) {
    tls::ContextPtr ctx = h.certificate ? context(h.certificate) : nullptr;
    table->addHost(h.host, {ctx ? ctx : table->defaultContext(), h.ssl_redirect, h.hsts});
  }
  for (const model::PassthroughRoute& p : desired.passthrough) {
    auto it = std::find(cluster_names.begin(), cluster_names.end(), p.cluster);
    if (it != cluster_names.end()) {
      table->addPassthrough(p.host, {static_cast<std::uint32_t>(it - cluster_names.begin()),
                                     p.proxy_protocol, p.sources});
    }
  }
  return table;
}

void Reconciler::renderTlsState(json::object& root) const {
  auto certificate = [](const tls::CertificatePtr& c) -> json::value {
    if (!c) {
      return nullptr;
    }
    json::array names;
    for (const auto& n : c->names()) {
      names.push_back(json::string(n));
    }
    return json::object{{"sha256", c->fingerprint()},
                        {"key", c->keyType()},
                        {"not_after", static_cast<std::int64_t>(c->notAfter())},
                        {"names", std::move(names)}};
  };
  const model::DesiredState& d = *current_->desired;
  json::array hosts;
  for (const auto& h : d.tls_hosts) {
    hosts.push_back(json::object{{"host", h.host},
                                 {"secret", h.secret},
                                 {"certificate", certificate(h.certificate)},
                                 {"ssl_redirect", h.ssl_redirect},
                                 {"hsts", h.hsts}});
  }
  json::array passthrough;
  for (const auto& p : d.passthrough) {
    passthrough.push_back(json::object{{"host", p.host},
                                       {"cluster", p.cluster},
                                       {"ingress", p.ingress},
                                       {"proxy_protocol", p.proxy_protocol ? "v2" : ""}});
  }
  root["tls"] =
      json::object{{"enabled", tls_factory_ != nullptr},
                   {"hosts", std::move(hosts)},
                   {"passthrough", std::move(passthrough)},
                   {"default_certificate",
                    certificate(d.default_certificate ? d.default_certificate : tls_fallback_)}};
}

void Reconciler::renderMetrics(admin::MetricsWriter& out) const {
  proxy::renderRouteMetrics(out, route_stats_);
  upstream::renderClusterMetrics(out, cluster_stats_);
  out.gauge("sluice_config_generation", "Generation of the routing snapshot served.", generation_);
  out.counter("sluice_config_reloads_total", "Manifest changes translated.", reloads_);
  out.gauge("sluice_rejected_objects",
            "Objects or files skipped or partly ignored in the current state.",
            source_problems_.size() + (current_ ? current_->desired->warnings.size() : 0));
  out.gauge("sluice_endpoints_refused",
            "Endpoint addresses of routed Services refused as loopback, link-local, unspecified "
            "or the node's own (API source; --allow-endpoint-cidrs).",
            current_ ? current_->desired->refused_endpoints : 0);
}

void Reconciler::renderState(json::object& root) const {
  root["generation"] = generation_;
  root["ingress_class"] = options_.classes.ingress_class;
  static const std::vector<k8s::Problem> kNone;
  root["warnings"] = problemsJson(source_problems_, current_ ? current_->desired->warnings : kNone);
  if (!current_) {
    return;
  }
  const model::DesiredState& d = *current_->desired;
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
  const auto now_ns = net::monotonicNs();
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
        {"load_balance",
         bal.policy() == model::LbPolicy::kLeastRequest ? "least-request" : "round-robin"},
        {"endpoints", std::move(eps)}});
  }
  root["clusters"] = std::move(clusters);
  json::array tcp_routes;
  for (const auto& r : d.tcp_routes) {
    tcp_routes.push_back(json::object{{"port", r.port}, {"cluster", r.cluster}});
  }
  root["tcp_routes"] = std::move(tcp_routes);
  renderTlsState(root);
}

}  // namespace sluice::control
