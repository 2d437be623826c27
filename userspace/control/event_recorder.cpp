#include "control/event_recorder.hpp"

#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.hpp"

namespace sluice::control {

using k8s::api::Client;
using k8s::api::describe;
using k8s::api::Response;
using k8s::api::urlEncode;

namespace asio = boost::asio;
using asio::awaitable;

namespace {

// Translation warns about Ingresses that are ours, and about those that name our class while
// it does not exist; the source's problems may be about anyone's.
bool namesOurClass(const k8s::Ingress& ing, const k8s::Store& store, const k8s::ClassFilter& ours) {
  return (ing.ingress_class_name && *ing.ingress_class_name == ours.ingress_class) ||
         k8s::isOurIngress(ing, store, ours);
}

}  // namespace

EventRecorder::EventRecorder(std::shared_ptr<Client> client, const k8s::Store& store,
                             EventRecorderOptions options, std::function<bool()> may_write)
    : client_(std::move(client)),
      store_(store),
      options_(std::move(options)),
      may_write_(std::move(may_write)),
      throttle_(options_.throttle, std::chrono::steady_clock::now()),
      wake_(client_->executor()) {}

void EventRecorder::start() {
  if (started_) {
    return;
  }
  started_ = true;
  asio::co_spawn(client_->executor(), run(), asio::detached);
}

void EventRecorder::observe(std::vector<k8s::Problem> warnings) {
  warnings_ = std::move(warnings);
  pass();
}

void EventRecorder::kick() {
  pass();
}

void EventRecorder::stop() {
  stopped_ = true;
  queue_.clear();
  wake_.cancel();
}

std::vector<EventRecorder::Queued> EventRecorder::candidates() const {
  constexpr std::string_view kIngress = "Ingress ";
  std::vector<Queued> out;
  for (const k8s::Problem& w : warnings_) {
    if (!w.object.starts_with(kIngress)) {
      continue;
    }
    auto it = store_.ingresses().find(w.object.substr(kIngress.size()));
    if (it == store_.ingresses().end() || it->second.metadata.uid.empty() ||
        !namesOurClass(it->second, store_, options_.ours)) {
      continue;
    }
    const k8s::ObjectMeta& meta = it->second.metadata;
    IngressEvent event{meta.ns,
                       meta.name,
                       meta.uid,
                       meta.resource_version,
                       std::string(eventReason(w.message)),
                       truncateUtf8(w.message, kEventNoteMax)};
    EventKey key{event.uid, event.reason, event.note};
    out.push_back({std::move(key), std::move(event)});
  }
  return out;
}

void EventRecorder::pass() {
  if (stopped_) {
    return;
  }
  std::vector<Queued> holding = candidates();
  std::vector<EventKey> keys;
  keys.reserve(holding.size());
  for (const Queued& q : holding) {
    keys.push_back(q.key);
  }
  const auto decision =
      throttle_.observe(keys, started_ && may_write_(), std::chrono::steady_clock::now());
  stats_.rate_limited += decision.rate_limited;
  for (const std::size_t i : decision.write) {
    if (queue_.size() >= options_.max_queue) {
      ++stats_.rate_limited;  // the API server is slower than the bucket: shed, as over the rate
      continue;
    }
    queue_.push_back(std::move(holding[i]));
  }
  if (!queue_.empty()) {
    wake_.cancel();
  }
}

awaitable<void> EventRecorder::run() {
  auto self = shared_from_this();
  while (!stopped_) {
    if (queue_.empty()) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    Queued item = std::move(queue_.front());
    queue_.pop_front();
    if (!may_write_()) {
      throttle_.forget(item.key);  // not written: written when we lead again and it still holds
      continue;
    }
    co_await write(std::move(item));
  }
}

awaitable<void> EventRecorder::write(Queued item) {
  // Strictly increasing times, so two Events on one Ingress never get the same name.
  auto at = std::chrono::system_clock::now();
  if (at <= last_at_) {
    at = last_at_ + std::chrono::microseconds(1);
  }
  last_at_ = at;
  const IngressEvent& e = item.event;
  const std::string path = "/apis/events.k8s.io/v1/namespaces/" + urlEncode(e.ns) + "/events";
  Result<Response> posted =
      co_await client_->post(path, eventJson(e, options_.reporting_instance, at));
  if (posted && posted->ok()) {
    ++stats_.written;
    stats_.last_error.clear();
    log::get("k8s")->debug("events: {} on Ingress {}/{}", e.reason, e.ns, e.name);
    co_return;
  }
  ++stats_.errors;
  throttle_.forget(item.key);
  fail("write " + e.reason + " Event on Ingress " + e.ns + "/" + e.name + ": " + describe(posted));
}

void EventRecorder::fail(const std::string& error) {
  stats_.last_error = error;
  auto log = log::get("k8s");
  const auto now = std::chrono::steady_clock::now();
  if (logged_at_ != std::chrono::steady_clock::time_point{} &&
      now - logged_at_ < options_.log_interval) {
    ++unlogged_;
    log->debug("events: {}", error);
    return;
  }
  if (unlogged_ > 0) {
    log->warn("events: {} ({} more failed since the last report)", error, unlogged_);
  } else {
    log->warn("events: {}", error);
  }
  logged_at_ = now;
  unlogged_ = 0;
}

void EventRecorder::renderMetrics(admin::MetricsWriter& out) const {
  using Type = admin::MetricsWriter::Type;
  out.counter("sluice_events_written_total", "Warning Events written on Ingresses.",
              stats_.written);
  out.family("sluice_events_dropped_total", Type::kCounter,
             "Warning Events not written, by reason (rate_limit: over the rate or the queue "
             "full; error: the write failed).");
  out.sample("sluice_events_dropped_total", {{"reason", "rate_limit"}}, stats_.rate_limited);
  out.sample("sluice_events_dropped_total", {{"reason", "error"}}, stats_.errors);
}

}  // namespace sluice::control
