#include "control/status_writer.hpp"

#include <algorithm>
#include <utility>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"

namespace sluice::control {

using k8s::decodeObject;
using k8s::Ingress;
using k8s::isOurIngress;
using k8s::LoadBalancerIngress;
using k8s::Object;
using k8s::Store;
using k8s::api::Client;
using k8s::api::describe;
using k8s::api::Response;
using k8s::api::statusOf;
using k8s::api::urlEncode;

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

namespace {

// A DNS name as Kubernetes validates status hostnames (RFC 1123 subdomain, lower case).
bool isDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  std::size_t label = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-') {
        return false;
      }
      label = 0;
      continue;
    }
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && label > 0)) {
      return false;
    }
    if (++label > 63) {
      return false;
    }
  }
  return label > 0 && s.back() != '-';
}

json::array toJson(const std::vector<LoadBalancerIngress>& addresses) {
  json::array out;
  for (const auto& a : addresses) {
    json::object entry;
    if (!a.ip.empty()) {
      entry["ip"] = a.ip;
    }
    if (!a.hostname.empty()) {
      entry["hostname"] = a.hostname;
    }
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

Result<std::vector<LoadBalancerIngress>> parsePublishAddresses(const std::string& text) {
  std::vector<LoadBalancerIngress> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) {
      return Error("an empty entry in '" + text + "'");
    }
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(item, ec);
    LoadBalancerIngress entry;
    if (!ec) {
      entry.ip = addr.to_string();  // canonical form, as the API server would store it
    } else if (isDnsName(item)) {
      entry.hostname = item;
    } else {
      return Error("'" + item + "' is neither an IP address nor a lower-case DNS name");
    }
    if (std::find(out.begin(), out.end(), entry) == out.end()) {
      out.push_back(std::move(entry));
    }
  }
  return out;
}

StatusWriter::StatusWriter(std::shared_ptr<Client> client, const Store& store,
                           StatusWriterOptions options, std::function<bool()> may_write)
    : client_(std::move(client)),
      store_(store),
      options_(std::move(options)),
      may_write_(std::move(may_write)),
      wake_(client_->executor()) {}

void StatusWriter::start() {
  if (started_) {
    return;
  }
  started_ = true;
  asio::co_spawn(client_->executor(), run(), asio::detached);
}

void StatusWriter::kick() {
  dirty_ = true;
  if (!backing_off_) {
    wake_.cancel();  // after a failure, the back-off runs out first: churn does not hammer
  }
}

void StatusWriter::stop() {
  stopped_ = true;
  wake_.cancel();
}

bool StatusWriter::current(const Ingress& ingress) const {
  return ingress.status_load_balancer == options_.addresses;
}

void StatusWriter::fail(std::string error) {
  ++stats_.failures;
  if (error != stats_.last_error) {
    log::get("k8s")->warn("ingress status: {}", error);
  }
  stats_.last_error = std::move(error);
}

awaitable<void> StatusWriter::run() {
  auto self = shared_from_this();
  auto backoff = options_.backoff_initial;
  while (!stopped_) {
    if (!dirty_) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    dirty_ = false;
    if (!may_write_()) {
      continue;  // the next kick (leadership gained) starts a pass
    }
    ++stats_.passes;
    // Keys first: the store may change while a request is out.
    std::vector<std::pair<std::string, std::string>> todo;
    for (const auto& [key, ing] : store_.ingresses()) {
      if (!current(ing) && isOurIngress(ing, store_, options_.ours)) {
        todo.emplace_back(ing.metadata.ns, ing.metadata.name);
      }
    }
    bool ok = true;
    for (const auto& [ns, name] : todo) {
      if (stopped_ || !may_write_()) {
        break;
      }
      ok = co_await write(ns, name) && ok;
    }
    if (ok) {
      backoff = options_.backoff_initial;
      stats_.last_error.clear();
      continue;
    }
    dirty_ = true;
    backing_off_ = true;
    wake_.expires_after(backoff);
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    backing_off_ = false;
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

awaitable<bool> StatusWriter::write(const std::string& ns, const std::string& name) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    const Outcome outcome = co_await writeOnce(ns, name);
    if (outcome != Outcome::kConflict) {
      co_return outcome == Outcome::kDone;
    }
    ++stats_.conflicts;  // changed since our GET: read it again
    if (stopped_ || !may_write_()) {
      co_return true;
    }
  }
  fail("update Ingress " + ns + "/" + name + " status: conflicts on every attempt");
  co_return false;
}

Result<std::string> StatusWriter::statusUpdate(const std::string& fetched) const {
  json::error_code ec;
  json::value doc = json::parse(fetched, ec);
  if (ec || !doc.is_object()) {
    return Error("the response is not a JSON object");
  }
  // Decide on the version we are about to overwrite, not the cached one.
  Result<Object> decoded = decodeObject(doc);
  const Ingress* fresh = decoded ? std::get_if<Ingress>(&*decoded) : nullptr;
  if (fresh == nullptr || !isOurIngress(*fresh, store_, options_.ours) || current(*fresh)) {
    return std::string();
  }
  json::value& status = doc.get_object()["status"];
  if (!status.is_object()) {
    status = json::object();
  }
  json::value& lb = status.get_object()["loadBalancer"];
  if (!lb.is_object()) {
    lb = json::object();
  }
  lb.get_object()["ingress"] = toJson(options_.addresses);
  return json::serialize(doc);
}

awaitable<StatusWriter::Outcome> StatusWriter::writeOnce(const std::string& ns,
                                                         const std::string& name) {
  const std::string path =
      "/apis/networking.k8s.io/v1/namespaces/" + urlEncode(ns) + "/ingresses/" + urlEncode(name);
  const std::string what = "Ingress " + ns + "/" + name;
  Result<Response> got = co_await client_->get(path);
  if (stopped_ || statusOf(got) == 404) {
    co_return Outcome::kDone;  // 404: deleted meanwhile; the informer removes it
  }
  if (!got || !got->ok()) {
    fail("get " + what + ": " + describe(got));
    co_return Outcome::kFailed;
  }
  Result<std::string> body = statusUpdate(got->body);
  if (!body) {
    fail("get " + what + ": " + body.error().message());
    co_return Outcome::kFailed;
  }
  if (body->empty() || !may_write_()) {
    // Nothing to write; or leadership ended while the GET was out: write nothing.
    co_return Outcome::kDone;
  }
  Result<Response> put = co_await client_->put(path + "/status", std::move(*body));
  if (put && put->ok()) {
    ++stats_.writes;
    log::get("k8s")->debug("ingress status: {} published", what);
    co_return Outcome::kDone;
  }
  if (statusOf(put) == 409) {
    co_return Outcome::kConflict;
  }
  fail("update " + what + " status: " + describe(put));
  co_return Outcome::kFailed;
}

}  // namespace sluice::control
