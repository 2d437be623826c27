#include "k8s/api/source.hpp"

#include <algorithm>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"

namespace sluice::k8s::api {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;
using Clock = std::chrono::steady_clock;

struct ApiSource::State : std::enable_shared_from_this<State> {
  State(std::shared_ptr<Client> c, ApiSourceOptions o)
      : client(std::move(c)),
        options(std::move(o)),
        timer(client->executor()),
        retry(client->executor()) {}

  std::shared_ptr<Client> client;
  ApiSourceOptions options;
  std::function<void()> on_changed;
  Store store;
  std::vector<std::shared_ptr<Informer>> informers;
  asio::steady_timer timer;  // coalescing
  asio::steady_timer retry;  // discovery back-off
  bool started = false;
  bool stopped = false;
  bool discovered = false;
  std::string slice_version;
  std::string discovery_error;
  std::string option_error;
  bool pending = false;
  Clock::time_point first_change{};
  std::uint64_t notifications = 0;
  std::uint64_t changes = 0;

  void notify() {
    if (stopped) {
      return;
    }
    ++changes;
    const auto now = Clock::now();
    if (!pending) {
      pending = true;
      first_change = now;
    }
    timer.expires_at(std::min(now + options.quiet, first_change + options.max_delay));
    timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopped || !self->pending) {
        return;
      }
      self->pending = false;
      ++self->notifications;
      if (self->on_changed) {
        self->on_changed();
      }
    });
  }

  void addInformer(ResourceInfo info) {
    auto inf = std::make_shared<Informer>(client, std::move(info), options.informer, store,
                                          [weak = weak_from_this()] {
                                            if (auto self = weak.lock()) {
                                              self->notify();
                                            }
                                          });
    informers.push_back(inf);
    inf->start();
  }

  awaitable<void> discover() {
    auto self = shared_from_this();
    auto logger = log::get("k8s");
    auto backoff = options.informer.backoff_initial;
    while (!stopped) {
      Result<Response> got = co_await client->get("/apis/discovery.k8s.io");
      if (stopped) {
        co_return;
      }
      if (statusOf(got) == 404) {
        discovery_error =
            "the API server does not serve discovery.k8s.io: EndpointSlices are not watched, no "
            "Service has endpoints";
        logger->warn("{}", discovery_error);
        break;
      }
      if (got && got->ok()) {
        json::error_code ec;
        json::value doc = json::parse(got->body, ec);
        std::vector<std::string> versions;
        if (!ec && doc.is_object()) {
          if (const json::value* vs = doc.get_object().if_contains("versions");
              vs && vs->is_array()) {
            for (const json::value& v : vs->get_array()) {
              if (const json::object* vo = v.if_object()) {
                if (const json::value* s = vo->if_contains("version"); s && s->is_string()) {
                  versions.emplace_back(s->get_string());
                }
              }
            }
          }
        }
        for (const char* want : {"v1", "v1beta1"}) {
          if (std::find(versions.begin(), versions.end(), want) != versions.end()) {
            slice_version = want;
            break;
          }
        }
        if (!slice_version.empty()) {
          discovery_error.clear();
          break;
        }
        discovery_error =
            "discovery.k8s.io serves neither v1 nor v1beta1: " + got->body.substr(0, 200);
      } else {
        discovery_error = "discovery of discovery.k8s.io: " + describe(got);
      }
      logger->warn("{}; retrying", discovery_error);
      notify();
      retry.expires_after(backoff);
      co_await retry.async_wait(asio::as_tuple(asio::use_awaitable));
      backoff = std::min(backoff * 2, options.informer.backoff_max);
    }
    if (stopped) {
      co_return;
    }
    discovered = true;
    if (!slice_version.empty()) {
      logger->info("EndpointSlices: discovery.k8s.io/{}", slice_version);
      addInformer({"EndpointSlice", "discovery.k8s.io/" + slice_version, "endpointslices", false,
                   options.ns, ""});
    }
    notify();
  }
};

ApiSource::ApiSource(std::shared_ptr<Client> client, ApiSourceOptions options)
    : state_(std::make_shared<State>(std::move(client), std::move(options))) {}

ApiSource::~ApiSource() {
  stop();
}

void ApiSource::start(std::function<void()> on_change) {
  State& s = *state_;
  if (s.started) {
    return;
  }
  s.on_changed = std::move(on_change);
  s.started = true;
  const std::string& ns = s.options.ns;
  s.addInformer({"Ingress", "networking.k8s.io/v1", "ingresses", false, ns, ""});
  s.addInformer({"IngressClass", "networking.k8s.io/v1", "ingressclasses", true, "", ""});
  s.addInformer({"Service", "v1", "services", false, ns, ""});
  s.addInformer({"Secret", "v1", "secrets", false, ns, "type=kubernetes.io/tls"});
  if (!s.options.tcp_services.empty()) {
    if (auto ref = parseNamespacedName(s.options.tcp_services)) {
      s.addInformer(
          {"ConfigMap", "v1", "configmaps", false, ref->ns, "metadata.name=" + ref->name});
    } else {
      s.option_error = "tcp-services \"" + s.options.tcp_services +
                       "\": expected namespace/name; TCP routes are off";
    }
  }
  // The XDP front door's deny list (--deny-source-ranges): one more ConfigMap by name.
  if (auto ref = parseNamespacedName(s.options.deny_source_ranges)) {
    s.addInformer({"ConfigMap", "v1", "configmaps", false, ref->ns, "metadata.name=" + ref->name});
  }
  asio::co_spawn(s.client->executor(), s.discover(), asio::detached);
}

void ApiSource::stop() {
  State& s = *state_;
  if (s.stopped) {
    return;
  }
  s.stopped = true;
  s.timer.cancel();
  s.retry.cancel();
  for (auto& inf : s.informers) {
    inf->stop();
  }
  s.client->shutdown();
}

const Store& ApiSource::store() const {
  return state_->store;
}

std::vector<Problem> ApiSource::problems() const {
  std::vector<Problem> out;
  if (!state_->option_error.empty()) {
    out.push_back({"kubernetes API", state_->option_error});
  }
  if (!state_->discovery_error.empty()) {
    out.push_back({"kubernetes API endpointslices", state_->discovery_error});
  }
  for (const auto& inf : state_->informers) {
    for (auto& w : inf->warnings()) {
      out.push_back(std::move(w));
    }
  }
  return out;
}

bool ApiSource::ready() const {
  if (!state_->discovered) {
    return false;
  }
  // TLS Secrets are optional: an agent whose RBAC forbids reading them reports it (a problem)
  // and serves, its TLS hosts with the default certificate, instead of never becoming ready.
  return std::all_of(state_->informers.begin(), state_->informers.end(), [](const auto& inf) {
    return inf->synced() || (inf->resource().kind == "Secret" && inf->forbidden());
  });
}

ApiSourceStats ApiSource::stats() const {
  ApiSourceStats out;
  for (const auto& inf : state_->informers) {
    out.kinds.push_back({inf->resource().kind, inf->stats()});
  }
  out.endpoint_slice_version = state_->slice_version;
  out.notifications = state_->notifications;
  out.changes = state_->changes;
  out.client = state_->client->stats();
  return out;
}

}  // namespace sluice::k8s::api

namespace sluice::k8s::api {

void ApiSource::renderMetrics(admin::MetricsWriter& out) const {
  using Type = admin::MetricsWriter::Type;
  const ApiSourceStats stats = this->stats();
  out.family("sluice_k8s_events_total", Type::kCounter, "Watch events by kind and type.");
  for (const auto& k : stats.kinds) {
    const std::pair<const char*, std::uint64_t> types[] = {{"ADDED", k.stats.added},
                                                           {"MODIFIED", k.stats.modified},
                                                           {"DELETED", k.stats.deleted},
                                                           {"BOOKMARK", k.stats.bookmarks},
                                                           {"ERROR", k.stats.error_events}};
    for (const auto& [type, n] : types) {
      out.sample("sluice_k8s_events_total", {{"kind", k.kind}, {"type", type}}, n);
    }
  }
  struct PerKind {
    const char* name;
    Type type;
    const char* help;
    std::uint64_t (*value)(const InformerStats&);
  };
  static constexpr PerKind kPerKind[] = {
      {"sluice_k8s_relists_total", Type::kCounter, "Full lists after the first (410 Gone, errors).",
       [](const InformerStats& s) { return s.relists; }},
      {"sluice_k8s_watch_restarts_total", Type::kCounter, "Watches restarted after they ended.",
       [](const InformerStats& s) { return s.watch_restarts; }},
      {"sluice_k8s_synced", Type::kGauge, "1 once the kind was listed successfully.",
       [](const InformerStats& s) { return std::uint64_t{s.synced ? 1u : 0u}; }},
      {"sluice_k8s_last_sync_timestamp_seconds", Type::kGauge,
       "Unix time of the last successful list or event, by kind.",
       [](const InformerStats& s) {
         return static_cast<std::uint64_t>(
             std::chrono::duration_cast<std::chrono::seconds>(s.last_sync.time_since_epoch())
                 .count());
       }},
  };
  for (const PerKind& m : kPerKind) {
    out.family(m.name, m.type, m.help);
    for (const auto& k : stats.kinds) {
      out.sample(m.name, {{"kind", k.kind}}, m.value(k.stats));
    }
  }
  renderClientMetrics(out, "source", stats.client);
}

void ApiSource::renderState(boost::json::object& out) const {
  out["source"] = kind();
  out["manifests"] = "";
  out["synced"] = ready();
  out["endpoint_slice_version"] = state_->slice_version;
}

}  // namespace sluice::k8s::api
