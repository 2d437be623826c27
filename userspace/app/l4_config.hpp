// Settings of the XDP L4 fast path for TCP routes (bpf/xdp_l4.bpf.c, docs/l4-fast-path.md), from
// the --l4-* flags and --maglev-table-size. One block in flags.hpp, like the front door's.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace sluice {
template <typename T>
class Result;
}  // namespace sluice

namespace sluice::app {

struct L4Settings {
  std::string fast_path = "auto";         // auto: chained behind the front door; off
  std::string removed_backend = "drain";  // drain | reset
  std::uint32_t maglev_table_size = 16381;
  std::string snat_ports = "61000-65535";  // outside net.ipv4.ip_local_port_range
  std::uint32_t idle_timeout_s = 300;
  std::uint32_t closing_timeout_s = 10;
  // Parsed by validateL4.
  std::uint16_t snat_lo = 61000;
  std::uint16_t snat_hi = 65535;
  bool enabled() const { return fast_path == "auto"; }
};

void addL4Flags(CLI::App& cli, L4Settings& out);
// Checks names, the prime table size and the port range; fills snat_lo/hi.
Result<void> validateL4(L4Settings& l4);

}  // namespace sluice::app
