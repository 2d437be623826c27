// How the agent moves the bytes of routed connections, decided once at startup: --splice
// resolved against what the kernel offers, the sockmap datapath when it may be used, and what
// the admin port shows of it (strategy and why, relay counters, the flows open now).
//
// Construction and the renderers run on the control thread; the relays read `config` only.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "admin/metrics.hpp"
#include "bpf/splice_datapath.hpp"
#include "proxy/relay/relay.hpp"

namespace sluice::bpf {
class SpliceDatapath;
}

namespace sluice::proxy {

class Splicing {
public:
  // Resolves `requested` (auto, sockmap, pipe, copy): opens the datapath pinned under `pin_dir`
  // when sockmap may be used, and fills `config` (the connection and body strategies).
  // Logs the choice and why, once. BPF is an accelerator: without it the agent serves anyway.
  // `verify`: how the startup probe verifies the program (SpliceDatapath::probe); `open`: how
  // the datapath is opened (the agent loads it in a child process and adopts the pins).
  Splicing(std::string requested, const std::string& pin_dir, SpliceConfig& config,
           bpf::SpliceDatapath::Verifier verify, bpf::SpliceDatapath::Opener open);
  ~Splicing();
  Splicing(const Splicing&) = delete;
  Splicing& operator=(const Splicing&) = delete;

  // Every 30 s, deletes map entries whose sockets are gone (a crash, a kernel-side close).
  void startStaleSweep(const boost::asio::any_io_executor& executor);
  void stop();

  // The sockmap datapath the relays arm pairs in, or null when sockmap is not used.
  bpf::SpliceDatapath* datapath() const {
    return config_.connection == SpliceStrategy::kSockmap ? datapath_.get() : nullptr;
  }

  void renderMetrics(admin::MetricsWriter& out) const;
  // "kernel_datapath", "splice" and "splice_strategy" (ingressctl status reads it).
  void renderState(boost::json::object& out) const;
  // /debug/flows: the handed-off flows open now.
  boost::json::array flows() const;

private:
  void sweep();

  const std::string requested_;
  const SpliceConfig& config_;
  std::string probe_;   // what the kernel offers, one line
  std::string reason_;  // why this strategy
  std::string bpf_error_;
  std::unique_ptr<bpf::SpliceDatapath> datapath_;
  std::unique_ptr<boost::asio::steady_timer> sweep_timer_;
  bool stopped_ = false;
};

}  // namespace sluice::proxy
