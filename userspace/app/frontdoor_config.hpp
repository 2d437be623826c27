// Settings of the XDP front door (bpf/xdp_frontdoor.bpf.c, docs/xdp-frontdoor.md), from the
// --xdp-* flags. Kept apart from flags.hpp so the front door's flags are one block there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace sluice {
class Error;
template <typename T>
class Result;
}  // namespace sluice

namespace sluice::app {

struct XdpSettings {
  std::vector<std::string> interfaces;  // --xdp-interfaces; empty = no front door
  std::string mode = "auto";            // native | generic | auto
  double syn_rate_per_source = 0;       // new connections per second per source; 0 = no limit
  std::uint32_t syn_burst = 0;          // 0 = max(1, rate)
  double packet_rate_per_source = 0;    // packets per second per source; 0 = no limit
  std::uint32_t packet_burst = 0;       // 0 = max(1, rate)
  std::string deny_source_ranges;       // ConfigMap NAMESPACE/NAME of denied CIDRs; "" = none
  bool syn_proxy = false;               // --xdp-syn-proxy
  bool detach_on_exit = true;           // false: leave the program for the next agent (upgrades)
  bool enabled() const { return !interfaces.empty(); }
};

// Declares the --xdp-* flags, --syn-rate-per-source/--syn-burst and --deny-source-ranges.
void addXdpFlags(CLI::App& cli, XdpSettings& out);
// Checks them together (mode name, rates, the ConfigMap reference).
Result<void> validateXdp(const XdpSettings& xdp);

}  // namespace sluice::app
