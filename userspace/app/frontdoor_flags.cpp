#include <CLI/CLI.hpp>

#include <cmath>

#include "app/frontdoor_config.hpp"
#include "bpf/frontdoor.hpp"
#include "common/result.hpp"
#include "k8s/objects.hpp"

namespace sluice::app {

void addXdpFlags(CLI::App& cli, XdpSettings& out) {
  cli.add_option("--xdp-interfaces", out.interfaces,
                 "Attach the XDP front door (deny lists, per-source SYN limits) to these "
                 "interfaces, comma-separated; it judges only TCP to the agent's own listeners. "
                 "Refuses an interface running someone else's XDP program. Default: none")
      ->delimiter(',');
  cli.add_option("--xdp-mode", out.mode, "native | generic | auto (native, else generic)")
      ->capture_default_str();
  cli.add_option("--syn-rate-per-source", out.syn_rate_per_source,
                 "XDP: new connections (SYNs) per second admitted from one source (IPv6: per "
                 "/64); 0 = no limit")
      ->capture_default_str();
  cli.add_option("--syn-burst", out.syn_burst,
                 "XDP: SYNs a source may send at once above its rate; 0 = the rate");
  cli.add_option("--packet-rate-per-source", out.packet_rate_per_source,
                 "XDP: packets per second to the listeners from one source; 0 = no limit")
      ->capture_default_str();
  cli.add_option("--packet-burst", out.packet_burst, "XDP: packet burst; 0 = the rate");
  cli.add_option("--deny-source-ranges", out.deny_source_ranges,
                 "ConfigMap NAMESPACE/NAME whose every data value lists denied CIDRs, one a "
                 "line ('#' comments); dropped in XDP. Also read from --manifests");
  cli.add_option("--xdp-syn-proxy", out.syn_proxy,
                 "XDP: answer SYNs with SYN cookies while a listener's SYN queue is full "
                 "(kernel 6.0+; needs net.ipv4.tcp_syncookies=1 or 2, see docs/xdp-frontdoor.md)")
      ->capture_default_str();
  cli.add_option("--xdp-detach-on-exit", out.detach_on_exit,
                 "Detach the front door when the agent exits; false leaves it enforcing (with "
                 "pinned maps) until the next agent replaces it, for gapless upgrades")
      ->capture_default_str();
}

Result<void> validateXdp(const XdpSettings& xdp) {
  if (auto mode = bpf::parseXdpMode(xdp.mode); !mode) {
    return mode.error();
  }
  for (double rate : {xdp.syn_rate_per_source, xdp.packet_rate_per_source}) {
    if (!std::isfinite(rate) || rate < 0 || rate > 1e9) {
      return Error("--syn-rate-per-source/--packet-rate-per-source: " + std::to_string(rate) +
                   " is not a rate from 0 to 1e9 per second");
    }
  }
  if (!xdp.deny_source_ranges.empty() && !k8s::parseNamespacedName(xdp.deny_source_ranges)) {
    return Error("--deny-source-ranges '" + xdp.deny_source_ranges +
                 "' must be NAMESPACE/NAME of a ConfigMap");
  }
  if (!xdp.enabled() && (xdp.syn_proxy || xdp.syn_rate_per_source > 0)) {
    return Error("--xdp-syn-proxy and --syn-rate-per-source need --xdp-interfaces");
  }
  return success();
}

}  // namespace sluice::app
