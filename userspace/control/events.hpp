// The pure part of Kubernetes Events for translation warnings: which warnings become Events
// (EventThrottle: dedup plus a token bucket, time passed in), their reason, and the Event object.
// The I/O lives in event_recorder.hpp.
//
// Events are events.k8s.io/v1, not core/v1: the same objects underneath (`kubectl describe
// ingress` and `kubectl get events` show both), but v1 has the fields we fill as first-class
// ones (regarding, note, reportingController, reportingInstance, action) and the API server
// validates them strictly on create (a note over 1024 bytes, a missing reason or action is
// refused), so a malformed Event fails loudly in our tests instead of being stored half-empty.
// It is GA since Kubernetes 1.19. client-go's newer recorder (tools/events) writes it too.
#pragma once

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::control {

inline constexpr std::string_view kEventsController = "sluice.dev/ingress-agent";
inline constexpr std::size_t kEventNoteMax = 1024;  // bytes; the API server's limit on note

// One Event's identity for deduplication: the same object (by uid, so a re-created Ingress is a
// new object), reason and message are written once while the warning holds.
struct EventKey {
  std::string uid;
  std::string reason;
  std::string message;  // as written (truncated)
  auto operator<=>(const EventKey&) const = default;
};

// A token bucket: `capacity` tokens to start with, one more every `period`, never more than
// `capacity`. The caller passes the time, so tests need no sleeping.
class TokenBucket {
public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(std::size_t capacity, Clock::duration period, Clock::time_point now);
  // Takes one token if there is one.
  bool take(Clock::time_point now);
  std::size_t available(Clock::time_point now);

private:
  void refill(Clock::time_point now);

  std::size_t capacity_;
  Clock::duration period_;
  std::size_t tokens_;
  Clock::time_point last_;  // when the last token was added (kept at `now` while full)
};

// A set of keys holding at most `capacity`: inserting into a full set drops the oldest key.
class EventDedup {
public:
  explicit EventDedup(std::size_t capacity);
  // False if the key was there already (it does not become newer).
  bool insert(const EventKey& key);
  bool erase(const EventKey& key);
  bool contains(const EventKey& key) const { return index_.contains(key); }
  // Drops every key that `keep` does not return true for.
  template <typename Keep>
  void retainIf(Keep keep) {
    for (auto it = order_.begin(); it != order_.end();) {
      if (keep(it->second->first)) {
        ++it;
      } else {
        index_.erase(it->second);
        it = order_.erase(it);
      }
    }
  }
  std::size_t size() const { return index_.size(); }

private:
  using Index = std::map<EventKey, std::uint64_t>;  // key → insertion sequence
  std::size_t capacity_;
  std::uint64_t next_ = 0;
  Index index_;
  std::map<std::uint64_t, Index::iterator> order_;  // oldest first
};

struct EventThrottleOptions {
  std::size_t dedup_capacity = 4096;
  std::size_t burst = 30;                  // Events at once
  std::chrono::milliseconds refill{2000};  // then one per refill: 30 a minute
};

// Decides which of the warnings that hold now are written as Events.
class EventThrottle {
public:
  using Clock = std::chrono::steady_clock;
  EventThrottle(EventThrottleOptions options, Clock::time_point now);

  struct Decision {
    std::vector<std::size_t> write;  // indexes into `current` of the Events to write now
    std::size_t rate_limited = 0;    // new warnings dropped for want of a token
  };
  // `current`: every warning that holds now. Keys not in it are forgotten (a warning that ends
  // and comes back is written again). Each new key is remembered, and is either written (it
  // took a token) or dropped (rate limited; not tried again while it holds). Not `leading`, the
  // keys are only forgotten: nothing is written or remembered.
  Decision observe(const std::vector<EventKey>& current, bool leading, Clock::time_point now);
  // An Event that was not written after all (the request failed, or leadership ended before
  // it was sent): the next observe() that still sees the warning tries again.
  void forget(const EventKey& key) { seen_.erase(key); }
  std::size_t remembered() const { return seen_.size(); }

private:
  TokenBucket bucket_;
  EventDedup seen_;
};

// The Event reason (a CamelCase word) for a warning on an Ingress, from the warning's text:
// "InvalidPath", "RuleShadowed", "ServiceNotFound", … ; "IngressWarning" for a text it does not
// know.
std::string_view eventReason(std::string_view message);

// `text` cut to at most `max` bytes on a UTF-8 character boundary, ending in "..." when cut.
std::string truncateUtf8(std::string_view text, std::size_t max);

// A unique Event name for an object: its name (cut to leave room) "." the time in hex
// nanoseconds, as client-go names Events.
std::string eventName(std::string_view object_name, std::chrono::system_clock::time_point at);

// `identity` as a reportingInstance: characters outside [A-Za-z0-9._-] become '-', and a value
// over 63 characters keeps its start and its last 9 (the election identity's random suffix).
std::string reportingInstance(std::string_view identity);

// A Warning Event about an Ingress.
struct IngressEvent {
  std::string ns;
  std::string name;
  std::string uid;
  std::string resource_version;
  std::string reason;
  std::string note;  // at most kEventNoteMax bytes
};

// The events.k8s.io/v1 Event to POST to /apis/events.k8s.io/v1/namespaces/NS/events.
std::string eventJson(const IngressEvent& event, std::string_view instance,
                      std::chrono::system_clock::time_point at);

}  // namespace sluice::control
