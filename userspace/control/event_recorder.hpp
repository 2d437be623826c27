// Writes a Warning Event on an Ingress for each translation warning about it, while this agent
// leads (the Lease the status writer uses):
//
//   observe(warnings)  (the reconciler's, after every reconcile of a synced store)
//     └─► warnings on Ingresses that name our class and are in the store (their uid)
//         └─► EventThrottle: new (uid, reason, message)? a token? ─► queued, never waited for
//               run(): POST /apis/events.k8s.io/v1/namespaces/NS/events, one at a time
//
// observe() only computes and queues; the writes run on the client's executor, so the
// reconciler never blocks on the API server and nothing here throws into it. A failed write
// is counted, logged at warn at most once a minute (debug otherwise), and forgotten by the
// throttle, so the next observe() that still sees the warning tries again. Leadership is
// checked before every POST; queued Events are discarded when it ends.
//
// Runs on the client's executor; not thread-safe. The Store must outlive the recorder.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "admin/metrics.hpp"
#include "control/events.hpp"
#include "k8s/api/client.hpp"
#include "k8s/ingress_class.hpp"
#include "k8s/problem.hpp"
#include "k8s/store.hpp"

namespace sluice::control {

struct EventRecorderOptions {
  std::string reporting_instance;  // this agent (reportingInstance(identity))
  k8s::ClassFilter ours;           // Events go only on Ingresses that name our class
  EventThrottleOptions throttle;
  std::size_t max_queue = 64;  // Events waiting for the API server; more are rate limited
  std::chrono::seconds log_interval{60};
};

struct EventRecorderStats {
  std::uint64_t written = 0;
  std::uint64_t rate_limited = 0;  // dropped: no token, or the queue was full
  std::uint64_t errors = 0;        // dropped: the POST failed (tried again while it holds)
  std::string last_error;          // "" after a write that landed
};

class EventRecorder : public std::enable_shared_from_this<EventRecorder> {
public:
  EventRecorder(std::shared_ptr<k8s::api::Client> client, const k8s::Store& store,
                EventRecorderOptions options, std::function<bool()> may_write);

  void start();
  // The warnings that hold now (source problems and translate()'s). Never blocks.
  void observe(std::vector<k8s::Problem> warnings);
  // Leadership was gained: the warnings last observed are checked again.
  void kick();
  void stop();  // no request starts after this

  const EventRecorderStats& stats() const { return stats_; }
  // sluice_events_written_total, sluice_events_dropped_total{reason}.
  void renderMetrics(admin::MetricsWriter& out) const;

private:
  struct Queued {
    EventKey key;
    IngressEvent event;
  };
  // The Events the current warnings call for, in warning order.
  std::vector<Queued> candidates() const;
  void pass();
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> write(Queued item);
  void fail(const std::string& error);

  std::shared_ptr<k8s::api::Client> client_;
  const k8s::Store& store_;
  EventRecorderOptions options_;
  std::function<bool()> may_write_;
  EventThrottle throttle_;
  std::vector<k8s::Problem> warnings_;  // as last observed
  std::deque<Queued> queue_;
  boost::asio::steady_timer wake_;
  bool started_ = false;
  bool stopped_ = false;
  std::chrono::system_clock::time_point last_at_{};  // of the last Event sent
  std::chrono::steady_clock::time_point logged_at_{};
  std::uint64_t unlogged_ = 0;  // failures since the last warn line
  EventRecorderStats stats_;
};

}  // namespace sluice::control
