#include "k8s/api/informer.hpp"

#include <algorithm>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"

namespace sluice::k8s::api {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;
using namespace std::chrono_literals;

namespace {

const json::string* stringAt(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (std::string_view key : path) {
    const json::object* o = cur->if_object();
    if (o == nullptr) {
      return nullptr;
    }
    cur = o->if_contains(key);
    if (cur == nullptr) {
      return nullptr;
    }
  }
  return cur->if_string();
}

std::string resourceVersionOf(const json::value& v) {
  const json::string* s = stringAt(v, {"metadata", "resourceVersion"});
  return s != nullptr ? std::string(*s) : std::string();
}

}  // namespace

std::string ResourceInfo::collectionPath() const {
  std::string path =
      api_version.find('/') == std::string::npos ? "/api/" + api_version : "/apis/" + api_version;
  if (!cluster_scoped && !ns.empty()) {
    path += "/namespaces/" + ns;
  }
  return path + "/" + plural;
}

Informer::Informer(std::shared_ptr<Client> client, ResourceInfo resource, InformerOptions options,
                   Store& store, std::function<void()> notify)
    : client_(std::move(client)),
      resource_(std::move(resource)),
      options_(options),
      store_(store),
      notify_(std::move(notify)),
      timer_(client_->executor()),
      rng_(std::random_device{}()) {}

void Informer::start() {
  asio::co_spawn(timer_.get_executor(), run(), asio::detached);
}

void Informer::stop() {
  stopped_ = true;
  timer_.cancel();
}

std::vector<Problem> Informer::warnings() const {
  std::vector<Problem> out;
  if (!stats_.last_error.empty()) {
    out.push_back({"kubernetes API " + resource_.plural, stats_.last_error});
  }
  for (const auto& [ref, w] : bad_) {
    out.push_back(w);
  }
  return out;
}

void Informer::setError(std::string text) {
  if (text != stats_.last_error) {
    stats_.last_error = std::move(text);
    if (!stopped_) {
      notify_();
    }
  }
}

std::chrono::milliseconds Informer::jittered(std::chrono::milliseconds base) {
  std::uniform_real_distribution<double> dist(0.5, 1.5);
  return std::chrono::milliseconds(static_cast<std::int64_t>(base.count() * dist(rng_)));
}

awaitable<void> Informer::sleep(std::chrono::milliseconds delay) {
  timer_.expires_after(delay);
  co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
}

void Informer::prepare(json::value& item) const {
  if (json::object* o = item.if_object()) {
    if (!o->contains("kind")) {
      (*o)["kind"] = resource_.kind;
    }
    if (!o->contains("apiVersion")) {
      (*o)["apiVersion"] = resource_.api_version;
    }
  }
}

bool Informer::applyUpsert(const ObjectRef& ref, json::value& value) {
  Result<Object> decoded = decodeObject(value);
  if (decoded) {
    bool changed = store_.upsert(std::move(*decoded));
    in_store_.insert(ref);
    changed |= bad_.erase(ref) > 0;
    return changed;
  }
  ++stats_.decode_failures;
  const bool kept = in_store_.contains(ref);
  std::string message =
      decoded.error().message() + (kept ? " (keeping the last good version)" : " (skipped)");
  log::get("k8s")->warn("{}: {}", ref.display(), message);
  Problem w{ref.display(), std::move(message)};
  auto [it, inserted] = bad_.try_emplace(ref, w);
  if (!inserted && !(it->second == w)) {
    it->second = std::move(w);
    return true;
  }
  return inserted;
}

awaitable<std::optional<Informer::Listed>> Informer::fetchList() {
  auto logger = log::get("k8s");
  Listed listed;
  std::string cont;
  for (;;) {
    std::string target =
        resource_.collectionPath() + "?limit=" + std::to_string(options_.page_size);
    if (!cont.empty()) {
      target += "&continue=" + urlEncode(cont);
    }
    if (!resource_.field_selector.empty()) {
      target += "&fieldSelector=" + urlEncode(resource_.field_selector);
    }
    Result<Response> got = co_await client_->get(target);
    if (stopped_) {
      co_return std::nullopt;
    }
    if (statusOf(got) == 410 && !cont.empty()) {
      // The continue token expired (compaction) while paging: start over.
      logger->info("list {}: continue token expired, listing again", resource_.plural);
      cont.clear();
      listed.items.clear();
      continue;
    }
    if (!got || !got->ok()) {
      ++stats_.failures;
      forbidden_ = statusOf(got) == 403;
      setError("list " + resource_.plural + ": " + describe(got));
      logger->warn("list {}: {}", resource_.plural, describe(got));
      co_return std::nullopt;
    }
    json::error_code ec;
    json::value body = json::parse(got->body, ec);
    json::array* page = nullptr;
    if (!ec && body.is_object()) {
      if (json::value* it = body.get_object().if_contains("items")) {
        if (it->is_null()) {
          *it = json::array();
        }
        page = it->if_array();
      }
    }
    if (page == nullptr) {
      ++stats_.failures;
      ++stats_.malformed_lines;
      setError("list " + resource_.plural + ": the response is not a List object");
      logger->warn("list {}: the response is not a List object", resource_.plural);
      co_return std::nullopt;
    }
    listed.resource_version = resourceVersionOf(body);
    for (json::value& item : *page) {
      listed.items.push_back(std::move(item));
    }
    const json::string* next = stringAt(body, {"metadata", "continue"});
    if (next == nullptr || next->empty()) {
      co_return listed;
    }
    cont = std::string(*next);
  }
}

bool Informer::replaceAll(std::vector<json::value>& items) {
  bool changed = false;
  std::set<ObjectRef> seen;
  std::map<ObjectRef, Problem> old_bad = std::move(bad_);
  bad_.clear();
  for (json::value& item : items) {
    prepare(item);
    std::optional<ObjectRef> ref = peekRef(item);
    if (!ref) {
      ++stats_.decode_failures;
      log::get("k8s")->warn("list {}: an item without a name was skipped", resource_.plural);
      continue;
    }
    seen.insert(*ref);
    changed |= applyUpsert(*ref, item);
  }
  changed |= old_bad != bad_;
  for (auto it = in_store_.begin(); it != in_store_.end();) {
    if (!seen.contains(*it)) {
      changed |= store_.remove(*it);
      ++stats_.deleted;
      it = in_store_.erase(it);
    } else {
      ++it;
    }
  }
  return changed;
}

awaitable<bool> Informer::list() {
  std::optional<Listed> listed = co_await fetchList();
  if (!listed) {
    co_return false;
  }
  // Replace: decode everything, then remove what is no longer there.
  const bool changed = replaceAll(listed->items);
  stats_.resource_version = listed->resource_version;
  if (stats_.lists > 0) {
    ++stats_.relists;
  }
  ++stats_.lists;
  stats_.last_sync = std::chrono::system_clock::now();
  const bool first = !stats_.synced;
  stats_.synced = true;
  setError("");
  log::get("k8s")->debug("listed {}: {} objects at resourceVersion {}", resource_.plural,
                         listed->items.size(), listed->resource_version);
  if (changed || first) {
    notify_();
  }
  co_return true;
}

bool Informer::onLine(std::string_view line) {
  auto logger = log::get("k8s");
  json::error_code ec;
  json::value event = json::parse(line, ec);
  const json::object* eo = ec ? nullptr : event.if_object();
  const json::string* type = eo != nullptr ? stringAt(event, {"type"}) : nullptr;
  json::value* object = eo != nullptr ? event.get_object().if_contains("object") : nullptr;
  if (type == nullptr || object == nullptr || !object->is_object()) {
    ++stats_.malformed_lines;
    watch_failed_ = true;
    watch_error_ = "watch " + resource_.plural + ": malformed event";
    logger->warn("watch {}: malformed event ({} bytes), watching again from {}", resource_.plural,
                 line.size(), stats_.resource_version);
    return false;
  }
  if (*type == "BOOKMARK") {
    ++stats_.bookmarks;
    if (std::string rv = resourceVersionOf(*object); !rv.empty()) {
      stats_.resource_version = std::move(rv);
    }
    stats_.last_sync = std::chrono::system_clock::now();
    return true;
  }
  if (*type == "ERROR") {
    ++stats_.error_events;
    const json::value* code = object->get_object().if_contains("code");
    const std::int64_t c = code != nullptr && code->is_int64() ? code->get_int64() : 0;
    const json::string* msg = stringAt(*object, {"message"});
    const std::string text = msg != nullptr ? std::string(*msg) : std::string("(no message)");
    if (c == 410) {
      gone_ = true;
      logger->info("watch {}: {} (410 Gone), listing again", resource_.plural, text);
    } else {
      watch_failed_ = true;
      watch_error_ = "watch " + resource_.plural + ": error " + std::to_string(c) + ": " + text;
      logger->warn("{}", watch_error_);
    }
    return false;
  }
  const bool is_delete = *type == "DELETED";
  if (!is_delete && *type != "ADDED" && *type != "MODIFIED") {
    ++stats_.malformed_lines;
    logger->warn("watch {}: unknown event type {}", resource_.plural, std::string_view(*type));
    return true;
  }
  prepare(*object);
  if (std::string rv = resourceVersionOf(*object); !rv.empty()) {
    stats_.resource_version = std::move(rv);
  }
  stats_.last_sync = std::chrono::system_clock::now();
  std::optional<ObjectRef> ref = peekRef(*object);
  if (!ref || ref->kind != resource_.kind) {
    ++stats_.decode_failures;
    logger->warn("watch {}: {} event for an object without a name or of another kind, skipped",
                 resource_.plural, std::string_view(*type));
    return true;
  }
  bool changed = false;
  if (is_delete) {
    ++stats_.deleted;
    changed |= store_.remove(*ref);
    in_store_.erase(*ref);
    changed |= bad_.erase(*ref) > 0;
  } else {
    ++(*type == "ADDED" ? stats_.added : stats_.modified);
    changed |= applyUpsert(*ref, *object);
  }
  if (changed) {
    notify_();
  }
  return true;
}

awaitable<void> Informer::run() {
  auto self = shared_from_this();
  auto logger = log::get("k8s");
  std::chrono::milliseconds backoff = options_.backoff_initial;
  bool need_list = true;
  while (!stopped_) {
    if (need_list) {
      if (!co_await list()) {
        if (stopped_) {
          break;
        }
        co_await sleep(jittered(backoff));
        backoff = std::min(backoff * 2, options_.backoff_max);
        continue;
      }
      need_list = false;
    }
    std::uniform_int_distribution<std::int64_t> pick(options_.watch_timeout_min.count(),
                                                     options_.watch_timeout_max.count());
    const std::int64_t timeout_s = pick(rng_);
    std::string target =
        resource_.collectionPath() +
        "?allowWatchBookmarks=true&watch=1&resourceVersion=" + urlEncode(stats_.resource_version) +
        "&timeoutSeconds=" + std::to_string(timeout_s);
    if (!resource_.field_selector.empty()) {
      target += "&fieldSelector=" + urlEncode(resource_.field_selector);
    }
    const auto idle = options_.idle_timeout.count() > 0
                          ? options_.idle_timeout
                          : std::chrono::milliseconds(std::chrono::seconds(timeout_s + 30));
    gone_ = false;
    watch_failed_ = false;
    watch_error_.clear();
    ++stats_.watches;
    const auto started = std::chrono::steady_clock::now();
    WatchEnd end = co_await client_->watch(
        target, idle, [this](std::string_view line) { return !stopped_ && onLine(line); });
    if (stopped_) {
      break;
    }
    ++stats_.watch_restarts;
    if (end.status == 410 || gone_) {
      // Our resourceVersion is too old: relist at once (the server told us what to do).
      need_list = true;
      continue;
    }
    std::string problem;
    if (end.status != 200) {
      problem = "watch " + resource_.plural + ": " +
                (end.status == 0 ? (end.error ? end.error->message() : std::string("no response"))
                                 : Response{end.status, end.body}.describe());
    } else if (watch_failed_) {
      problem = watch_error_;
    } else if (end.error) {
      problem = "watch " + resource_.plural + " ended: " + end.error->message();
    }
    const bool healthy =
        end.status == 200 && !watch_failed_ &&
        (end.lines > 0 || std::chrono::steady_clock::now() - started >= options_.healthy_watch);
    if (healthy) {
      backoff = options_.backoff_initial;
    }
    if (!problem.empty()) {
      ++stats_.failures;
      logger->warn("{}; watching again from {}", problem, stats_.resource_version);
      // A watch that cannot be established is a real problem; a dropped one is routine.
      if (end.status != 200) {
        setError(problem);
      }
    } else {
      setError("");
    }
    co_await sleep(jittered(backoff));
    if (!healthy) {
      backoff = std::min(backoff * 2, options_.backoff_max);
    }
  }
}

}  // namespace sluice::k8s::api
