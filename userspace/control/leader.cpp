#include "control/leader.hpp"

#include <cstdio>
#include <ctime>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"

namespace sluice::control {

using k8s::api::Client;
using k8s::api::describe;
using k8s::api::Response;
using k8s::api::statusOf;
using k8s::api::urlEncode;

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;
using Clock = std::chrono::steady_clock;

std::string microTime(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(us.count() / 1'000'000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%06lldZ",
                static_cast<long long>(us.count() % 1'000'000));
  return buf;
}

Result<void> validate(const LeaderElectionOptions& o) {
  if (o.ns.empty() || o.name.empty() || o.identity.empty()) {
    return Error("the Lease needs a namespace, a name and an identity");
  }
  if (!(o.retry_period.count() > 0 && o.renew_deadline > o.retry_period &&
        o.lease_duration > o.renew_deadline)) {
    return Error("lease duration > renew deadline > retry period > 0 does not hold");
  }
  if (o.lease_duration < std::chrono::seconds(1)) {
    return Error("the lease duration must be at least 1 s (the Lease stores whole seconds)");
  }
  return success();
}

LeaderElector::LeaderElector(std::shared_ptr<Client> client, LeaderElectionOptions options,
                             std::function<void(bool)> on_change)
    : client_(std::move(client)),
      options_(std::move(options)),
      on_change_(std::move(on_change)),
      timer_(client_->executor()),
      expiry_(client_->executor()),
      rng_(std::random_device{}()) {}

std::string LeaderElector::leasePath(bool collection) const {
  std::string path =
      "/apis/coordination.k8s.io/v1/namespaces/" + urlEncode(options_.ns) + "/leases";
  return collection ? path : path + "/" + urlEncode(options_.name);
}

void LeaderElector::start() {
  if (started_) {
    return;
  }
  started_ = true;
  asio::co_spawn(client_->executor(), run(), asio::detached);
}

bool LeaderElector::leading() const {
  return leading_ && Clock::now() < renewed_at_ + options_.renew_deadline;
}

void LeaderElector::renewed(Clock::time_point sent) {
  ++stats_.renewals;
  stats_.last_error.clear();
  // Counted from when the round began, not when the answer came: the server may have committed
  // the renewal at any moment in between, and followers time the lease from that commit.
  renewed_at_ = sent;
  if (Clock::now() >= renewed_at_ + options_.renew_deadline) {
    lose("the renewal answered only after the renew deadline");
    return;
  }
  if (!leading_) {
    leading_ = true;
    stats_.leading = true;
    ++stats_.acquisitions;
    log::get("k8s")->info("leader election: {} leads Lease {}/{}", options_.identity, options_.ns,
                          options_.name);
    if (on_change_) {
      on_change_(true);
    }
  }
  // Ends leadership on time even if the next rounds hang.
  expiry_.expires_at(renewed_at_ + options_.renew_deadline);
  expiry_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!ec && self && self->leading_ &&
        Clock::now() >= self->renewed_at_ + self->options_.renew_deadline) {
      self->lose("no renewal succeeded within the renew deadline (" +
                 std::to_string(self->options_.renew_deadline.count()) + " ms)");
    }
  });
}

void LeaderElector::lose(const std::string& why) {
  expiry_.cancel();
  if (!leading_) {
    return;
  }
  leading_ = false;
  stats_.leading = false;
  ++stats_.losses;
  log::get("k8s")->warn("leader election: {} lost Lease {}/{}: {}", options_.identity, options_.ns,
                        options_.name, why);
  if (on_change_) {
    on_change_(false);
  }
}

void LeaderElector::fail(std::string error) {
  ++stats_.failures;
  if (error != stats_.last_error) {
    log::get("k8s")->warn("leader election: {}", error);
  }
  stats_.last_error = std::move(error);
}

void LeaderElector::stop(bool release) {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  release_on_stop_ = release;
  releasing_ = release && running_;  // run() releases once its round in flight has ended
  timer_.cancel();
  expiry_.cancel();
  if (leading_) {
    leading_ = false;
    stats_.leading = false;
    if (on_change_) {
      on_change_(false);
    }
  }
}

awaitable<void> LeaderElector::run() {
  auto self = shared_from_this();
  running_ = true;
  while (!stopped_) {
    const auto sent = Clock::now();
    const bool ok = co_await tryAcquireOrRenew();
    if (stopped_) {
      break;
    }
    if (ok) {
      renewed(sent);
    } else if (leading_ && Clock::now() >= renewed_at_ + options_.renew_deadline) {
      lose("no renewal succeeded within the renew deadline");
    }
    // Followers spread their retries (client-go's jitter factor 1.2); the leader renews on time.
    auto delay = options_.retry_period;
    if (!leading_) {
      std::uniform_int_distribution<std::int64_t> extra(0, delay.count() * 6 / 5);
      delay += std::chrono::milliseconds(extra(rng_));
    }
    timer_.expires_after(delay);
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (release_on_stop_) {
    co_await release();  // hands the Lease back only if it still names us
  }
  releasing_ = false;
  running_ = false;
}

namespace {

struct LeaseRecord {
  std::string holder;
  std::int64_t duration_s = 0;
  std::int64_t transitions = 0;
  std::string acquire_time;
};

LeaseRecord readRecord(const json::object& spec) {
  LeaseRecord r;
  if (const json::value* v = spec.if_contains("holderIdentity"); v && v->is_string()) {
    r.holder = v->get_string();
  }
  if (const json::value* v = spec.if_contains("leaseDurationSeconds"); v && v->is_int64()) {
    r.duration_s = v->get_int64();
  }
  if (const json::value* v = spec.if_contains("leaseTransitions"); v && v->is_int64()) {
    r.transitions = v->get_int64();
  }
  if (const json::value* v = spec.if_contains("acquireTime"); v && v->is_string()) {
    r.acquire_time = v->get_string();
  }
  return r;
}

}  // namespace

awaitable<bool> LeaderElector::tryAcquireOrRenew() {
  const std::string now_text = microTime(std::chrono::system_clock::now());
  // Whole seconds on the Lease, rounded up: followers never wait less than we lead.
  const auto lease_s = std::chrono::ceil<std::chrono::seconds>(options_.lease_duration);
  Result<Response> got = co_await client_->get(leasePath(false));
  if (stopped_) {
    co_return false;
  }
  if (statusOf(got) == 404) {
    json::object lease{{"apiVersion", "coordination.k8s.io/v1"},
                       {"kind", "Lease"},
                       {"metadata", {{"name", options_.name}, {"namespace", options_.ns}}},
                       {"spec",
                        {{"holderIdentity", options_.identity},
                         {"leaseDurationSeconds", lease_s.count()},
                         {"acquireTime", now_text},
                         {"renewTime", now_text},
                         {"leaseTransitions", 0}}}};
    Result<Response> created = co_await client_->post(leasePath(true), json::serialize(lease));
    if (created && created->ok()) {
      stats_.holder = options_.identity;
      observed_record_.clear();
      co_return true;
    }
    if (statusOf(created) == 409) {
      ++stats_.conflicts;  // another candidate created it first
    } else {
      fail("create Lease " + options_.ns + "/" + options_.name + ": " + describe(created));
    }
    co_return false;
  }
  if (!got || !got->ok()) {
    fail("get Lease " + options_.ns + "/" + options_.name + ": " + describe(got));
    co_return false;
  }
  json::error_code ec;
  json::value doc = json::parse(got->body, ec);
  json::object* lease = ec ? nullptr : doc.if_object();
  if (lease == nullptr) {
    fail("Lease " + options_.ns + "/" + options_.name + ": the response is not a JSON object");
    co_return false;
  }
  json::value& spec_value = (*lease)["spec"];
  if (!spec_value.is_object()) {
    spec_value = json::object();
  }
  json::object& spec = spec_value.get_object();
  const LeaseRecord record = readRecord(spec);
  stats_.holder = record.holder;

  const auto now = Clock::now();
  std::string serialized = json::serialize(spec);
  if (serialized != observed_record_) {
    observed_record_ = std::move(serialized);
    observed_at_ = now;
  }
  const bool ours = record.holder == options_.identity;
  if (!ours && !record.holder.empty()) {
    const auto duration = record.duration_s > 0 ? std::chrono::seconds(record.duration_s) : lease_s;
    if (now < observed_at_ + duration) {
      if (leading_) {
        lose("the Lease names " + record.holder);
      }
      co_return false;
    }
  }
  spec["holderIdentity"] = options_.identity;
  spec["leaseDurationSeconds"] = lease_s.count();
  spec["renewTime"] = now_text;
  if (!ours || record.acquire_time.empty()) {
    spec["acquireTime"] = now_text;
    spec["leaseTransitions"] = ours ? record.transitions : record.transitions + 1;
  }
  Result<Response> put = co_await client_->put(leasePath(false), json::serialize(*lease));
  if (stopped_) {
    co_return false;
  }
  if (put && put->ok()) {
    stats_.holder = options_.identity;
    co_return true;
  }
  if (statusOf(put) == 409) {
    ++stats_.conflicts;
  } else {
    fail("update Lease " + options_.ns + "/" + options_.name + ": " + describe(put));
  }
  co_return false;
}

awaitable<void> LeaderElector::release() {
  Result<Response> got = co_await client_->get(leasePath(false));
  json::error_code ec;
  json::value doc = got && got->ok() ? json::parse(got->body, ec) : json::value();
  json::object* lease = ec ? nullptr : doc.if_object();
  json::value* spec = lease != nullptr ? lease->if_contains("spec") : nullptr;
  if (spec != nullptr && spec->is_object() &&
      readRecord(spec->get_object()).holder == options_.identity) {
    const std::string now_text = microTime(std::chrono::system_clock::now());
    json::object& s = spec->get_object();
    s["holderIdentity"] = "";
    s["leaseDurationSeconds"] = 1;
    s["renewTime"] = now_text;
    s["acquireTime"] = now_text;
    Result<Response> put = co_await client_->put(leasePath(false), json::serialize(*lease));
    if (put && put->ok()) {
      log::get("k8s")->info("leader election: released Lease {}/{}", options_.ns, options_.name);
    } else {
      log::get("k8s")->warn("leader election: releasing Lease {}/{}: {}", options_.ns,
                            options_.name, describe(put));
    }
  }
}

}  // namespace sluice::control
