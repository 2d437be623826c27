// Writes status.loadBalancer.ingress of the Ingresses we serve, and of no others.
//
//   kick() (the store changed, or leadership was gained)
//     └─► for every Ingress in the store that isOurIngress() and whose status differs from the
//         published addresses, while may_write() holds:
//           GET it fresh ─► still ours and still different? ─► PUT …/status with the GET's
//           resourceVersion (a concurrent change gets 409 and is retried from a fresh GET)
//
// may_write() (the leader check) is asked before every GET and every PUT, so a lost Lease stops
// the writes at once. Failures retry with exponential back-off; a write that lands comes back
// through the informer as a MODIFIED event, whose kick() then finds nothing to do. Only the
// loadBalancer list is replaced; other status fields are sent back as read.
//
// Runs on the client's executor; not thread-safe. The Store must outlive the writer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "k8s/api/client.hpp"
#include "k8s/ingress_class.hpp"
#include "k8s/objects.hpp"
#include "k8s/store.hpp"

namespace sluice::control {

struct StatusWriterOptions {
  std::vector<k8s::LoadBalancerIngress> addresses;  // published, in this order
  k8s::ClassFilter ours;                            // ingress class and controller we serve
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30'000};
};

// Parses a comma-separated --publish-address value: IP addresses become {ip}, DNS names
// {hostname}; an error says what is wrong with which entry.
Result<std::vector<k8s::LoadBalancerIngress>> parsePublishAddresses(const std::string& text);

struct StatusWriterStats {
  std::uint64_t writes = 0;     // status updates that landed
  std::uint64_t conflicts = 0;  // 409: the Ingress changed between our GET and PUT
  std::uint64_t failures = 0;   // other failed requests
  std::uint64_t passes = 0;     // passes over the store
  std::string last_error;       // "" after a clean pass
};

class StatusWriter : public std::enable_shared_from_this<StatusWriter> {
public:
  StatusWriter(std::shared_ptr<k8s::api::Client> client, const k8s::Store& store,
               StatusWriterOptions options, std::function<bool()> may_write);

  void start();
  void kick();  // re-check every Ingress soon (after the back-off, if a pass failed)
  void stop();  // no request starts after this

  const StatusWriterStats& stats() const { return stats_; }
  const StatusWriterOptions& options() const { return options_; }

private:
  boost::asio::awaitable<void> run();
  // One Ingress: false if a request failed and the pass should be retried after a back-off.
  boost::asio::awaitable<bool> write(const std::string& ns, const std::string& name);
  enum class Outcome { kDone, kFailed, kConflict };
  // One GET + PUT; kDone also when there was nothing to write (not ours, current, gone).
  boost::asio::awaitable<Outcome> writeOnce(const std::string& ns, const std::string& name);
  bool current(const k8s::Ingress& ingress) const;
  // From a fetched Ingress, the body of its status update: "" when there is nothing to write
  // (not ours, or already current); an error when `fetched` is not an object.
  Result<std::string> statusUpdate(const std::string& fetched) const;
  void fail(std::string error);

  std::shared_ptr<k8s::api::Client> client_;
  const k8s::Store& store_;
  StatusWriterOptions options_;
  std::function<bool()> may_write_;
  boost::asio::steady_timer wake_;
  bool started_ = false;
  bool stopped_ = false;
  bool dirty_ = true;
  bool backing_off_ = false;  // kick() then leaves the timer alone
  StatusWriterStats stats_;
};

}  // namespace sluice::control
