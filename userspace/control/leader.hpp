// Leader election over a coordination.k8s.io/v1 Lease, with client-go's leaderelection rules:
//
//   every retry_period (jittered while following):
//     GET the Lease ── 404 ──► POST one naming us                         (acquired)
//       ├─ another holder whose record changed less than its leaseDurationSeconds ago, timed by
//       │  OUR clock (clock skew between nodes does not matter) ──► follow
//       └─ free, expired or ours ──► PUT it back naming us, renewTime = now; the resourceVersion
//          from the GET makes a racing writer get 409 instead of both winning
//
//   Leading ends when no renewal succeeded for renew_deadline (shorter than lease_duration, so we
//   stop before any other candidate may start), or at once when the Lease names another holder.
//   leading() checks the deadline itself, so it turns false on time even while a request hangs.
//   stop() releases a held Lease (empty holder, 1 s duration) so another candidate takes over at
//   its next retry instead of after lease_duration.
//
// Runs on the client's executor; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "k8s/api/client.hpp"

namespace sluice::control {

struct LeaderElectionOptions {
  std::string ns;        // the Lease's namespace
  std::string name;      // the Lease's name
  std::string identity;  // this candidate; unique per process
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds renew_deadline{10'000};
  std::chrono::milliseconds retry_period{2'000};
};

// Whether the timings are consistent (lease_duration > renew_deadline > retry_period > 0).
Result<void> validate(const LeaderElectionOptions& options);

struct LeaderStats {
  bool leading = false;
  std::string holder;              // the holder last seen on the Lease ("" = none or unknown)
  std::uint64_t acquisitions = 0;  // times we became the leader
  std::uint64_t losses = 0;        // times leading ended (release on stop() not counted)
  std::uint64_t renewals = 0;      // successful writes of the Lease naming us
  std::uint64_t conflicts = 0;     // writes refused with 409 (another candidate raced us)
  std::uint64_t failures = 0;      // other failed requests
  std::string last_error;          // "" while healthy
};

class LeaderElector : public std::enable_shared_from_this<LeaderElector> {
public:
  // `on_change(true)` when we become the leader, `on_change(false)` when that ends (also on
  // stop()). Called on the executor.
  LeaderElector(std::shared_ptr<k8s::api::Client> client, LeaderElectionOptions options,
                std::function<void(bool leading)> on_change);

  void start();
  // Leading ends at once. With `release`, once the round in flight ended, the Lease is handed
  // back if it names us; settled() turns true when that finished (or was not needed).
  void stop(bool release = true);
  bool settled() const { return !releasing_; }

  // True only while the last successful renewal is younger than renew_deadline.
  bool leading() const;
  const LeaderStats& stats() const { return stats_; }
  const LeaderElectionOptions& options() const { return options_; }

private:
  boost::asio::awaitable<void> run();
  // One round: true if the Lease now names us with a fresh renewTime.
  boost::asio::awaitable<bool> tryAcquireOrRenew();
  boost::asio::awaitable<void> release();
  std::string leasePath(bool collection) const;
  // A round that began at `sent` renewed the Lease.
  void renewed(std::chrono::steady_clock::time_point sent);
  void lose(const std::string& why);
  void fail(std::string error);

  std::shared_ptr<k8s::api::Client> client_;
  LeaderElectionOptions options_;
  std::function<void(bool)> on_change_;
  boost::asio::steady_timer timer_;   // between rounds
  boost::asio::steady_timer expiry_;  // renew_deadline after the last renewal
  std::mt19937_64 rng_;
  bool started_ = false;
  bool stopped_ = false;
  bool running_ = false;
  bool release_on_stop_ = false;
  bool releasing_ = false;
  bool leading_ = false;
  std::chrono::steady_clock::time_point renewed_at_{};
  // The last Lease record seen and when it changed, by our clock.
  std::string observed_record_;
  std::chrono::steady_clock::time_point observed_at_{};
  LeaderStats stats_;
};

// A Kubernetes MicroTime ("2026-11-23T14:05:13.123456Z").
std::string microTime(std::chrono::system_clock::time_point t);

}  // namespace sluice::control
