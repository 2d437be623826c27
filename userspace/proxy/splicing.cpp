#include "proxy/splicing.hpp"

#include <chrono>

#include "bpf/splice_datapath.hpp"
#include "common/log.hpp"
#include "proxy/relay/flow_registry.hpp"

namespace sluice::proxy {

namespace json = boost::json;

Splicing::Splicing(std::string requested, const std::string& pin_dir, SpliceConfig& config,
                   bpf::SpliceDatapath::Verifier verify, bpf::SpliceDatapath::Opener open)
    : requested_(std::move(requested)), config_(config) {
  auto log = log::get("splice");
  probe_ = bpf::SpliceDatapath::probe(verify);
  log->info("kernel datapath: {}", probe_);
  if (requested_ == "auto" || requested_ == "sockmap") {
    if (auto opened = open({pin_dir})) {
      datapath_ = std::move(*opened);
      // A previous agent's flows died with it; their metadata did not.
      if (auto cleared = datapath_->clearStale(); cleared && *cleared > 0) {
        log->info("removed {} stale splice map entries left by a previous agent", *cleared);
      }
    } else {
      bpf_error_ = opened.error().message();
    }
  }
  if (requested_ == "copy") {
    config.connection = config.body = SpliceStrategy::kCopy;
    reason_ = "requested: userspace copy for everything";
  } else if (requested_ == "pipe") {
    config.connection = config.body = SpliceStrategy::kPipe;
    reason_ = "requested: splice(2) for connections and bodies";
  } else if (requested_ == "sockmap" && datapath_) {
    config.connection = SpliceStrategy::kSockmap;
    config.body = SpliceStrategy::kPipe;
    reason_ =
        "requested: sockmap for whole connections (a flow whose reader falls behind by "
        "--splice-flow-budget is reset), splice(2) for bodies";
  } else if (requested_ == "sockmap") {
    config.connection = config.body = SpliceStrategy::kPipe;
    reason_ = "sockmap requested but unavailable (" + bpf_error_ +
              "); splice(2) for connections and bodies, which needs no privilege";
    log->warn("--splice=sockmap: BPF unavailable ({}); serving with splice(2) instead", bpf_error_);
  } else {
    // Measured on 6.18 (docs/benchmarks.md, bench/splice.sh): sockmap's redirect runs through a
    // kernel work queue, so it lost to copy for small messages (0.8x messages per CPU-second)
    // and to pipe for bulk; its only bounded-memory mode (hold) cannot be relayed safely. So
    // auto does not use it whatever the probe says; the probe result is still reported.
    config.connection = SpliceStrategy::kAdaptive;
    config.body = SpliceStrategy::kPipe;
    reason_ = std::string(
                  "auto: copy for message-sized traffic, moving a direction to splice(2) once "
                  "it streams, and splice(2) for bodies over the threshold; sockmap ") +
              (datapath_ ? "is available but measured slower on this kernel"
                         : "is unavailable (" + bpf_error_ + ")");
  }
  log->info("connections by {}, bodies by {} over {} bytes; {}", strategyName(config.connection),
            strategyName(config.body), config.body_threshold, reason_);
}

Splicing::~Splicing() = default;

void Splicing::startStaleSweep(const boost::asio::any_io_executor& executor) {
  if (datapath_) {
    sweep_timer_ = std::make_unique<boost::asio::steady_timer>(executor);
    sweep();
  }
}

void Splicing::stop() {
  stopped_ = true;
  if (sweep_timer_) {
    sweep_timer_->cancel();
  }
}

void Splicing::sweep() {
  // Flows remove their own entries; this catches what a crash or a kernel-side close left.
  sweep_timer_->expires_after(std::chrono::seconds(30));
  sweep_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) {
      return;
    }
    if (auto cleared = datapath_->clearStale(); !cleared) {
      log::get("splice")->warn("stale entry sweep: {}", cleared.error().message());
    }
    sweep();
  });
}

void Splicing::renderMetrics(admin::MetricsWriter& out) const {
  using Type = admin::MetricsWriter::Type;
  const SpliceStats& sp = spliceStats();
  out.family("sluice_splice_flows_total", Type::kCounter,
             "Connections handed off after routing (Upgrade tunnels, TCP routes), by strategy.");
  for (auto s : {SpliceStrategy::kSockmap, SpliceStrategy::kPipe, SpliceStrategy::kCopy,
                 SpliceStrategy::kAdaptive}) {
    out.sample("sluice_splice_flows_total", {{"strategy", strategyName(s)}},
               sp.flows_total[static_cast<std::size_t>(s)].load());
  }
  out.gauge("sluice_splice_active_flows", "Handed-off connections open now.",
            sp.active_flows.load());
  out.counter("sluice_splice_fallbacks_total",
              "sockmap pairs that could not be armed and were relayed with splice(2).",
              sp.fallbacks.load());
  out.counter("sluice_splice_held_total",
              "sockmap flows reset because a reader fell behind by the flow budget.",
              sp.held.load());
  out.counter("sluice_splice_integrity_resets_total",
              "sockmap flows reset because the kernel handled more bytes than the socket "
              "received.",
              sp.integrity.load());
  out.counter("sluice_splice_upgraded_total",
              "adaptive flow directions moved from copy to splice(2) once they streamed.",
              sp.upgraded.load());
  out.counter("sluice_splice_bodies_total", "HTTP bodies moved with splice(2).",
              sp.body_splices.load());
  out.counter("sluice_splice_body_bytes_total", "Bytes of HTTP bodies moved with splice(2).",
              sp.body_bytes.load());
  if (!datapath_) {
    return;
  }
  if (auto verdicts = datapath_->verdictCounters()) {
    out.family("sluice_splice_verdicts_total", Type::kCounter,
               "sk_skb verdicts of the splice program, by outcome.");
    for (std::size_t i = 0; i < verdicts->size(); ++i) {
      out.sample("sluice_splice_verdicts_total", {{"outcome", bpf::kReasonLabels[i]}},
                 (*verdicts)[i]);
    }
  }
}

void Splicing::renderState(json::object& out) const {
  const SpliceStats& sp = spliceStats();
  json::object splice{{"requested", requested_},
                      {"strategy", strategyName(config_.connection)},
                      {"body_strategy", strategyName(config_.body)},
                      {"body_threshold", config_.body_threshold},
                      {"flow_budget", config_.flow_budget},
                      {"reason", reason_},
                      {"pin_dir", datapath_ ? datapath_->pinRoot() : std::string()},
                      {"active_flows", sp.active_flows.load()},
                      {"fallbacks", sp.fallbacks.load()},
                      {"held", sp.held.load()},
                      {"upgraded", sp.upgraded.load()},
                      {"integrity_resets", sp.integrity.load()}};
  if (!bpf_error_.empty()) {
    splice["bpf_error"] = bpf_error_;
  }
  out["kernel_datapath"] = probe_;
  out["splice"] = std::move(splice);
  out["splice_strategy"] = strategyName(config_.connection);
}

json::array Splicing::flows() const {
  json::array flows;
  for (const auto& f : flowRegistry().snapshot()) {
    const auto strategy = static_cast<SpliceStrategy>(f.strategy);
    std::string name(strategyName(strategy));
    std::uint64_t in = f.bytes_in;
    std::uint64_t out = f.bytes_out;
    if (strategy == SpliceStrategy::kAdaptive) {
      // Which relay each direction uses now: "adaptive(up:pipe,down:copy)".
      name += std::string("(up:") + ((f.piped & 1) != 0 ? "pipe" : "copy") +
              ",down:" + ((f.piped & 2) != 0 ? "pipe" : "copy") + ")";
    } else if (strategy == SpliceStrategy::kSockmap && datapath_) {
      // The kernel moved these bytes; the agent only wrote what it held before arming.
      if (auto st = datapath_->stats(f.client_cookie)) {
        in += st->bytes;
      }
      if (auto st = datapath_->stats(f.backend_cookie)) {
        out += st->bytes;
      }
    }
    json::object o{
        {"flow_id", f.id},
        {"client", f.client},
        {"backend", f.backend},
        {"strategy", name},
        {"bytes_in", in},
        {"bytes_out", out},
        {"age_seconds", std::chrono::duration_cast<std::chrono::seconds>(f.age).count()}};
    if (f.client_cookie != 0) {
      o["client_cookie"] = f.client_cookie;
    }
    flows.push_back(std::move(o));
  }
  return flows;
}

}  // namespace sluice::proxy
