#include "control/ingress_status.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "common/log.hpp"

namespace sluice::control {

namespace json = boost::json;

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

Result<LeaderElectionOptions> electionOptions(const IngressStatusOptions& o) {
  LeaderElectionOptions election;
  const char* pod_ns = env("POD_NAMESPACE");
  election.ns = !o.election_namespace.empty() ? o.election_namespace
                : pod_ns != nullptr           ? pod_ns
                                              : "sluice-system";
  election.name = o.election_id;
  election.identity = electionIdentity();
  election.lease_duration = o.lease_duration;
  election.renew_deadline = o.renew_deadline;
  election.retry_period = o.retry_period;
  if (auto valid = validate(election); !valid) {
    return valid.error().wrap("leader election");
  }
  return election;
}

}  // namespace

Result<std::unique_ptr<IngressStatus>> IngressStatus::create(boost::asio::any_io_executor executor,
                                                             const k8s::api::ConnectionConfig& api,
                                                             const k8s::Store& store,
                                                             IngressStatusOptions options) {
  auto log = log::get("control");
  std::unique_ptr<IngressStatus> self(new IngressStatus());
  std::string publish = options.publish_address;
  if (publish.empty()) {
    publish = env("HOST_IP") != nullptr ? env("HOST_IP") : "";
  }
  if (!options.enabled || publish.empty()) {
    self->disabled_ = !options.enabled ? "--update-status=false"
                                       : "no --publish-address and no HOST_IP in the environment";
    log->info("Ingress status: not written ({})", self->disabled_);
    return self;
  }
  StatusWriterOptions status_options;
  auto addresses = parsePublishAddresses(publish);
  if (!addresses) {
    return addresses.error().wrap("publish address from HOST_IP");
  }
  status_options.addresses = std::move(*addresses);
  status_options.ours = options.ours;
  SLUICE_TRY(LeaderElectionOptions election, electionOptions(options));
  // As client-go: half the renew deadline per request (at least 1 s), so one stalled request
  // leaves time for another before leadership would lapse.
  k8s::api::ClientOptions client_options;
  client_options.connect_timeout = client_options.request_timeout =
      std::max<std::chrono::milliseconds>(
          std::chrono::seconds(1), std::min<std::chrono::milliseconds>(options.renew_deadline / 2,
                                                                       std::chrono::seconds(10)));
  auto client = k8s::api::Client::create(std::move(executor), api, client_options);
  if (!client) {
    return client.error().wrap(api.source);
  }
  self->client_ = *client;
  IngressStatus* raw = self.get();
  auto may_write = [raw] {
    return raw->elector_ && raw->elector_->leading() && raw->may_publish_ && raw->may_publish_();
  };
  self->writer_ =
      std::make_shared<StatusWriter>(self->client_, store, std::move(status_options), may_write);
  EventRecorderOptions event_options;
  event_options.reporting_instance = reportingInstance(election.identity);
  event_options.ours = options.ours;
  self->events_ =
      std::make_shared<EventRecorder>(self->client_, store, std::move(event_options), may_write);
  self->elector_ = std::make_shared<LeaderElector>(self->client_, election, [raw](bool leading) {
    if (leading) {
      raw->writer_->kick();  // publish what changed while another agent led
      raw->events_->kick();  // and the warnings that hold now
    }
  });
  log->info("Ingress status: publishing {} when leader of Lease {}/{} (identity {})", publish,
            election.ns, election.name, election.identity);
  return self;
}

IngressStatus::~IngressStatus() = default;

void IngressStatus::start(std::function<bool()> may_publish) {
  may_publish_ = std::move(may_publish);
  if (writer_) {
    writer_->start();
    events_->start();
    elector_->start();
  }
}

void IngressStatus::kick(std::vector<k8s::Problem> warnings) {
  if (writer_) {
    writer_->kick();
    events_->observe(std::move(warnings));
  }
}

void IngressStatus::stop() {
  if (writer_) {
    writer_->stop();
    events_->stop();
    elector_->stop(true);
  }
}

bool IngressStatus::settled() const {
  return !elector_ || elector_->settled();
}

void IngressStatus::renderMetrics(admin::MetricsWriter& out) const {
  if (!writer_) {
    return;
  }
  using Type = admin::MetricsWriter::Type;
  const auto& ls = elector_->stats();
  out.gauge("sluice_k8s_leader", "1 while this agent holds the leader-election Lease.",
            elector_->leading() ? 1 : 0);
  out.counter("sluice_k8s_leader_acquisitions_total", "Times this agent became leader.",
              ls.acquisitions);
  out.counter("sluice_k8s_leader_losses_total", "Times leadership ended other than by shutdown.",
              ls.losses);
  const auto& ss = writer_->stats();
  out.family("sluice_k8s_status_updates_total", Type::kCounter,
             "Ingress status writes by result (ok, conflict, error).");
  out.sample("sluice_k8s_status_updates_total", {{"result", "ok"}}, ss.writes);
  out.sample("sluice_k8s_status_updates_total", {{"result", "conflict"}}, ss.conflicts);
  out.sample("sluice_k8s_status_updates_total", {{"result", "error"}}, ss.failures);
  events_->renderMetrics(out);
  k8s::api::renderClientMetrics(out, "leader", client_->stats());
}

void IngressStatus::renderState(json::object& out) const {
  json::object status{{"enabled", writer_ != nullptr}};
  if (!writer_) {
    status["reason"] = disabled_;
    out["ingress_status"] = std::move(status);
    return;
  }
  json::array published;
  for (const auto& a : writer_->options().addresses) {
    published.push_back(json::string(a.ip.empty() ? a.hostname : a.ip));
  }
  const auto& ls = elector_->stats();
  const auto& ss = writer_->stats();
  status["publish"] = std::move(published);
  status["lease"] = elector_->options().ns + "/" + elector_->options().name;
  status["identity"] = elector_->options().identity;
  status["leader"] = elector_->leading();
  status["holder"] = ls.holder;
  status["writes"] = ss.writes;
  status["last_error"] = !ss.last_error.empty() ? ss.last_error : ls.last_error;
  const auto& es = events_->stats();
  status["events"] = json::object{{"written", es.written},
                                  {"dropped_rate_limit", es.rate_limited},
                                  {"dropped_error", es.errors},
                                  {"last_error", es.last_error}};
  out["ingress_status"] = std::move(status);
}

}  // namespace sluice::control
