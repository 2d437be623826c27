#include <CLI/CLI.hpp>

#include <cstdio>

#include "app/l4_config.hpp"
#include "common/result.hpp"
#include "lb/maglev.hpp"

namespace sluice::app {

void addL4Flags(CLI::App& cli, L4Settings& out) {
  cli.add_option("--l4-fast-path", out.fast_path,
                 "auto: TCP routes are forwarded in XDP (Maglev, NAT) on the --xdp-interfaces "
                 "where native XDP runs; off: the agent's relay serves them")
      ->capture_default_str();
  cli.add_option("--l4-removed-backend", out.removed_backend,
                 "Fast-path flows of an endpoint that left its Service: drain (keep them until "
                 "they end) or reset (the next packet is answered with an RST)")
      ->capture_default_str();
  cli.add_option("--maglev-table-size", out.maglev_table_size,
                 "Slots of each TCP route's Maglev table; prime, ≥100× its endpoints")
      ->capture_default_str();
  cli.add_option("--l4-snat-ports", out.snat_ports,
                 "LO-HI source ports of fast-path flows to backends; keep outside "
                 "net.ipv4.ip_local_port_range")
      ->capture_default_str();
  cli.add_option("--l4-idle-timeout", out.idle_timeout_s, "Seconds an idle fast-path flow lives")
      ->capture_default_str();
}

Result<void> validateL4(L4Settings& l4) {
  if (l4.fast_path != "auto" && l4.fast_path != "off") {
    return Error("--l4-fast-path: \"" + l4.fast_path + "\" is not auto or off");
  }
  if (l4.removed_backend != "drain" && l4.removed_backend != "reset") {
    return Error("--l4-removed-backend: \"" + l4.removed_backend + "\" is not drain or reset");
  }
  if (auto m = lb::validateMaglevSize(l4.maglev_table_size); !m) {
    return m.error().wrap("--maglev-table-size");
  }
  unsigned lo = 0, hi = 0;
  char tail = 0;
  if (std::sscanf(l4.snat_ports.c_str(), "%u-%u%c", &lo, &hi, &tail) != 2 || lo == 0 ||
      hi > 65535 || lo > hi) {
    return Error("--l4-snat-ports: \"" + l4.snat_ports + "\" is not LO-HI within 1-65535");
  }
  l4.snat_lo = static_cast<std::uint16_t>(lo);
  l4.snat_hi = static_cast<std::uint16_t>(hi);
  if (l4.idle_timeout_s == 0) {
    return Error("--l4-idle-timeout must be at least 1 second");
  }
  return success();
}

}  // namespace sluice::app
