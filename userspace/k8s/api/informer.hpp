// One resource's list+watch loop with client-go reflector semantics, feeding a shared Store.
//
//   list (paginated: limit + continue) ─► replace this kind in the store, deletes for vanished
//     └─► watch from the list's resourceVersion (allowWatchBookmarks, random 5–10 min timeout)
//           ├─ ADDED/MODIFIED/DELETED ─► store; BOOKMARK ─► only the resourceVersion advances
//           ├─ 410 Gone (HTTP status or ERROR event) ─► relist
//           └─ end, drop, stall, garbage line ─► re-watch from the last resourceVersion after a
//              jittered exponential back-off (reset after a healthy watch)
//
// An object that does not decode is skipped with a warning and keeps its last good version; a
// line that is not JSON ends the watch (the events after the last good resourceVersion are
// replayed by the next watch, so nothing is lost). Runs on the client's executor; not
// thread-safe. The owner must call stop() before destroying the Store it was given.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/fwd.hpp>

#include "k8s/api/client.hpp"
#include "k8s/objects.hpp"
#include "k8s/problem.hpp"
#include "k8s/store.hpp"

namespace sluice::k8s::api {

struct ResourceInfo {
  std::string kind;         // "Ingress"
  std::string api_version;  // "networking.k8s.io/v1"; list items carry no kind/apiVersion
  std::string plural;       // "ingresses"
  bool cluster_scoped = false;
  std::string ns;              // "" = all namespaces (ignored for cluster-scoped kinds)
  std::string field_selector;  // e.g. "type=kubernetes.io/tls"
  // "/apis/networking.k8s.io/v1/namespaces/ns/ingresses" or "/api/v1/services".
  std::string collectionPath() const;
};

struct InformerOptions {
  std::size_t page_size = 500;
  std::chrono::seconds watch_timeout_min{300};  // timeoutSeconds is random in [min, max]
  std::chrono::seconds watch_timeout_max{600};
  // A watch with no bytes for this long is abandoned. 0 = timeoutSeconds + 30 s (the server
  // ends the watch itself before that), which only catches a stuck connection.
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::milliseconds backoff_initial{250};
  std::chrono::milliseconds backoff_max{30'000};
  // A watch that delivered an event or lasted this long resets the back-off.
  std::chrono::milliseconds healthy_watch{10'000};
};

struct InformerStats {
  bool synced = false;  // listed successfully at least once
  // Watch events by type; `deleted` also counts objects that vanished in a relist.
  std::uint64_t added = 0, modified = 0, deleted = 0, bookmarks = 0, error_events = 0;
  std::uint64_t lists = 0;    // successful full lists (the first one included)
  std::uint64_t relists = 0;  // lists after the first (410 Gone, failures)
  std::uint64_t watches = 0;  // watch requests started
  std::uint64_t watch_restarts = 0;
  std::uint64_t decode_failures = 0;  // objects skipped because they did not decode
  std::uint64_t malformed_lines = 0;  // watch lines or list bodies that were not valid JSON
  std::uint64_t failures = 0;         // failed list/watch requests
  std::chrono::system_clock::time_point last_sync{};  // last list or event; epoch = never
  std::string resource_version;                       // where the next watch starts
  std::string last_error;                             // "" while healthy
};

class Informer : public std::enable_shared_from_this<Informer> {
public:
  // `notify` is called (synchronously) whenever the store, the warnings or synced() changed.
  Informer(std::shared_ptr<Client> client, ResourceInfo resource, InformerOptions options,
           Store& store, std::function<void()> notify);

  void start();  // spawns the loop on the client's executor
  void stop();   // the loop ends at its next wake-up; the store is not touched again

  const ResourceInfo& resource() const { return resource_; }
  const InformerStats& stats() const { return stats_; }
  bool synced() const { return stats_.synced; }
  // The last list was refused with 403 (RBAC): waiting will not help until someone fixes it.
  bool forbidden() const { return forbidden_ && !stats_.synced; }
  // Current problems: objects that did not decode, and the list/watch failing.
  std::vector<Problem> warnings() const;

private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<bool> list();  // true: the cache was replaced
  struct Listed {
    std::vector<boost::json::value> items;
    std::string resource_version;
  };
  // Every page of the collection; nullopt when a request failed (recorded as the problem).
  boost::asio::awaitable<std::optional<Listed>> fetchList();
  // Replaces the cache with `items` (decoded); true if the store or the warnings changed.
  bool replaceAll(std::vector<boost::json::value>& items);
  bool onLine(std::string_view line);  // false: end this watch
  // Decodes and stores `value` (or records why not); true if the store or warnings changed.
  bool applyUpsert(const ObjectRef& ref, boost::json::value& value);
  void setError(std::string text);
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds delay);
  std::chrono::milliseconds jittered(std::chrono::milliseconds base);
  void prepare(boost::json::value& item) const;  // adds kind/apiVersion when missing

  std::shared_ptr<Client> client_;
  ResourceInfo resource_;
  InformerOptions options_;
  Store& store_;
  std::function<void()> notify_;
  boost::asio::steady_timer timer_;
  std::mt19937_64 rng_;
  bool stopped_ = false;
  bool gone_ = false;  // the current watch reported 410
  bool watch_failed_ = false;
  std::string watch_error_;
  std::set<ObjectRef> in_store_;      // objects this informer put into the store
  std::map<ObjectRef, Problem> bad_;  // objects whose current version is bad
  InformerStats stats_;
  bool forbidden_ = false;
};

}  // namespace sluice::k8s::api
