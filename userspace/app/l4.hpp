// The agent's side of the XDP L4 fast path: loads xdp_l4.bpf.o, chains it behind the front door
// (--l4-fast-path=auto with --xdp-interfaces), writes each snapshot's TCP routes and endpoints
// into its maps (lb::L4Planner), sweeps expired flows and frees drained backends every few
// seconds, and renders sluice_l4_* metrics and the "l4" state. When the fast path cannot run
// (off, no front door, an interface without native XDP, the load failed) it stays out of the way
// and says why in the state; the relay then serves every TCP route as before.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <memory>
#include <optional>
#include <string>

#include "admin/pages.hpp"
#include "app/flags.hpp"
#include "bpf/l4_fastpath.hpp"
#include "lb/l4_plan.hpp"
#include "proxy/snapshot.hpp"

namespace sluice::app {

class L4Control {
public:
  explicit L4Control(boost::asio::io_context& io) : sweep_timer_(io) {}

  // Loads and chains when enabled; never fails the agent (the relay is the fallback), except on
  // a map write error after chaining, which would leave the fast path half configured.
  Result<void> start(const AgentConfig& config, admin::Pages& pages,
                     const std::shared_ptr<const proxy::Snapshot>& snap);
  // Writes the snapshot's services, backends and Maglev tables.
  void apply(const std::shared_ptr<const proxy::Snapshot>& snap);
  // Unchains (unless --xdp-detach-on-exit=false): packets pass to the kernel again.
  void stop();
  bool active() const { return fast_ != nullptr && fast_->chained(); }

private:
  void sweep();
  void scheduleSweep();
  Result<void> applyPlan(const lb::L4Plan& plan);
  void renderMetrics(admin::MetricsWriter& out) const;
  void renderState(boost::json::object& out) const;

  boost::asio::steady_timer sweep_timer_;
  std::unique_ptr<bpf::L4FastPath> fast_;
  std::optional<lb::L4Planner> planner_;
  L4Settings settings_;
  std::string inactive_reason_ = "not started";
  std::size_t services_ = 0;
  std::size_t backends_ = 0;
  std::uint64_t swept_ = 0;
  bool detach_on_exit_ = true;  // --xdp-detach-on-exit
};

}  // namespace sluice::app
