// C++ view of bpf/include/sluice_abi.h, the ABI shared with the kernel programs and ingressctl.
// Header-only and free of libbpf, so the CLI can use it to find and decode pinned maps.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sluice_abi.h"

namespace sluice::bpf {

// A pinned map's layout is a contract with every process that opens it; these catch drift
// between the C header and what the compiler makes of it on each architecture.
static_assert(sizeof(sluice_flow_key) == 8);
static_assert(offsetof(sluice_flow_key, cookie) == 0);

static_assert(sizeof(sluice_flow) == 40);
static_assert(alignof(sluice_flow) == 8);
static_assert(offsetof(sluice_flow, peer_cookie) == 0);
static_assert(offsetof(sluice_flow, flow_id) == 8);
static_assert(offsetof(sluice_flow, created_ns) == 16);
static_assert(offsetof(sluice_flow, flags) == 24);
static_assert(offsetof(sluice_flow, strategy) == 28);
static_assert(offsetof(sluice_flow, pad) == 29);
static_assert(offsetof(sluice_flow, budget) == 32);
static_assert(offsetof(sluice_flow, seq_base) == 36);

static_assert(sizeof(sluice_flow_stats) == 32);
static_assert(offsetof(sluice_flow_stats, bytes) == 0);
static_assert(offsetof(sluice_flow_stats, packets) == 8);
static_assert(offsetof(sluice_flow_stats, last_seen_ns) == 16);
static_assert(offsetof(sluice_flow_stats, passed_bytes) == 24);

static_assert(SLUICE_REASON_COUNT <= SLUICE_REASON_SLOTS);

inline constexpr std::string_view kPinDir = SLUICE_PIN_DIR;

// Maps pinned by splice.bpf.c, in the order ingressctl lists them.
inline constexpr std::array<std::string_view, 5> kSpliceMaps = {
    SLUICE_MAP_SOCKS, SLUICE_MAP_TARGETS, SLUICE_MAP_PEERS, SLUICE_MAP_FLOW_STATS,
    SLUICE_MAP_VERDICTS};

// The verdict program's pin, next to the maps (see SLUICE_PROG_VERDICT).
inline constexpr std::string_view kVerdictPin = SLUICE_PROG_VERDICT;

// The kernel keeps BPF_OBJ_NAME_LEN - 1 = 15 characters of a name; bpftool and ingressctl's
// map ids must not mix up two maps that share those.
constexpr bool namesDistinctInKernel() {
  for (std::size_t i = 0; i < kSpliceMaps.size(); ++i) {
    for (std::size_t j = i + 1; j < kSpliceMaps.size(); ++j) {
      if (kSpliceMaps[i].substr(0, 15) == kSpliceMaps[j].substr(0, 15)) {
        return false;
      }
    }
  }
  return true;
}
static_assert(namesDistinctInKernel(), "two splice maps share their first 15 characters");

// ABI v3 is the two-sockhash arming order: the verdict's map is a new name (a v2 agent must never
// attach its verdict, which redirects into its own map, to the map v3 sockets are armed in), and
// it redirects into a separate program-less map.
static_assert(SLUICE_ABI_VERSION == 3, "a new ABI version needs new names for what changed");
static_assert(std::string_view(SLUICE_MAP_SOCKS).ends_with("_v3"));
static_assert(std::string_view(SLUICE_MAP_SOCKS) != std::string_view(SLUICE_MAP_TARGETS));
static_assert(std::string_view(SLUICE_MAP_SOCKS).size() <= 15 &&
                  std::string_view(SLUICE_MAP_TARGETS).size() <= 15,
              "sockhash names are what `bpftool map show` prints: keep them whole");
// Both sockhashes hold the same key as every per-socket map and a u64 socket fd as the value.
static_assert(sizeof(sluice_flow_key) == sizeof(__u64));

// "<root>/<map>": where libbpf pins `map` with pin_root_path = root.
inline std::string pinPath(std::string_view root, std::string_view map) {
  std::string path(root);
  if (!path.empty() && path.back() != '/') {
    path += '/';
  }
  path += map;
  return path;
}

// Metric label / CLI string of a verdict reason, from SLUICE_REASON_TABLE.
inline constexpr std::array<std::string_view, SLUICE_REASON_COUNT> kReasonLabels = {
#define SLUICE_REASON_LABEL_(name, value, label) label,
    SLUICE_REASON_TABLE(SLUICE_REASON_LABEL_)
#undef SLUICE_REASON_LABEL_
};

// The labels array is indexed by value, so the table must list values 0, 1, 2... in order.
constexpr bool reasonTableIsDense() {
  std::uint32_t next = 0;
  bool dense = true;
#define SLUICE_REASON_DENSE_(name, value, label) dense = dense && (value) == next++;
  SLUICE_REASON_TABLE(SLUICE_REASON_DENSE_)
#undef SLUICE_REASON_DENSE_
  return dense;
}
static_assert(reasonTableIsDense(), "SLUICE_REASON_TABLE values must be 0..N-1 in order");

// Label of a raw reason value; "unknown" for values newer than this build.
constexpr std::string_view reasonLabel(std::uint32_t reason) {
  return reason < kReasonLabels.size() ? kReasonLabels[reason] : std::string_view("unknown");
}

// ---- XDP front door (bpf/xdp_frontdoor.bpf.c) ----------------------------------------------

static_assert(sizeof(sluice_xdp_config) == 32);
static_assert(offsetof(sluice_xdp_config, syn_interval_ns) == 0);
static_assert(offsetof(sluice_xdp_config, pkt_interval_ns) == 8);
static_assert(offsetof(sluice_xdp_config, syn_burst) == 16);
static_assert(offsetof(sluice_xdp_config, pkt_burst) == 20);
static_assert(offsetof(sluice_xdp_config, flags) == 24);
static_assert(sizeof(sluice_xdp_scope_key) == 20);
static_assert(offsetof(sluice_xdp_scope_key, port) == 16);
static_assert(offsetof(sluice_xdp_scope_key, family) == 18);
static_assert(sizeof(sluice_xdp_scope) == 8);
static_assert(sizeof(sluice_xdp_deny4_key) == 8);
static_assert(offsetof(sluice_xdp_deny4_key, addr) == 4);
static_assert(sizeof(sluice_xdp_deny6_key) == 20);
static_assert(offsetof(sluice_xdp_deny6_key, addr) == 4);
static_assert(sizeof(sluice_xdp_deny) == 8);
// LPM data starts right after prefixlen: the port, then the address, with no gap.
static_assert(sizeof(sluice_xdp_acl4_key) == 12);
static_assert(offsetof(sluice_xdp_acl4_key, port) == 4);
static_assert(offsetof(sluice_xdp_acl4_key, addr) == 6);
static_assert(sizeof(sluice_xdp_acl6_key) == 24);
static_assert(offsetof(sluice_xdp_acl6_key, port) == 4);
static_assert(offsetof(sluice_xdp_acl6_key, addr) == 6);
static_assert(sizeof(sluice_xdp_acl) == 8);
static_assert(sizeof(sluice_xdp_src) == 24);
static_assert(offsetof(sluice_xdp_src, family) == 16);
static_assert(sizeof(sluice_xdp_bucket) == 48);
static_assert(offsetof(sluice_xdp_bucket, syns) == 16);
static_assert(offsetof(sluice_xdp_bucket, last_ns) == 40);
static_assert(SLUICE_XDP_REASON_COUNT <= SLUICE_REASON_SLOTS);

// Maps pinned by xdp_frontdoor.bpf.c, in the order ingressctl lists them.
inline constexpr std::array<std::string_view, 8> kXdpMaps = {
    SLUICE_MAP_XDP_CONFIG, SLUICE_MAP_XDP_SCOPE, SLUICE_MAP_XDP_DENY4, SLUICE_MAP_XDP_DENY6,
    SLUICE_MAP_XDP_ACL4,   SLUICE_MAP_XDP_ACL6,  SLUICE_MAP_XDP_RATE,  SLUICE_MAP_XDP_STATS};

constexpr bool xdpNamesDistinctInKernel() {
  for (std::size_t i = 0; i < kXdpMaps.size(); ++i) {
    for (std::size_t j = 0; j < kXdpMaps.size(); ++j) {
      if (i != j && kXdpMaps[i].substr(0, 15) == kXdpMaps[j].substr(0, 15)) {
        return false;
      }
    }
    for (std::string_view splice : kSpliceMaps) {
      if (kXdpMaps[i].substr(0, 15) == splice.substr(0, 15)) {
        return false;
      }
    }
  }
  return true;
}
static_assert(xdpNamesDistinctInKernel(), "two maps share their first 15 characters");
static_assert(std::string_view(SLUICE_XDP_PROG_FRONTDOOR).starts_with(SLUICE_XDP_PROG_PREFIX) &&
              std::string_view(SLUICE_XDP_PROG_SYNPROXY).starts_with(SLUICE_XDP_PROG_PREFIX));

// Metric label / CLI string of a front-door reason, from SLUICE_XDP_REASON_TABLE.
inline constexpr std::array<std::string_view, SLUICE_XDP_REASON_COUNT> kXdpReasonLabels = {
#define SLUICE_XDP_REASON_LABEL_(name, value, label) label,
    SLUICE_XDP_REASON_TABLE(SLUICE_XDP_REASON_LABEL_)
#undef SLUICE_XDP_REASON_LABEL_
};

constexpr bool xdpReasonTableIsDense() {
  std::uint32_t next = 0;
  bool dense = true;
#define SLUICE_XDP_REASON_DENSE_(name, value, label) dense = dense && (value) == next++;
  SLUICE_XDP_REASON_TABLE(SLUICE_XDP_REASON_DENSE_)
#undef SLUICE_XDP_REASON_DENSE_
  return dense;
}
static_assert(xdpReasonTableIsDense(), "SLUICE_XDP_REASON_TABLE values must be 0..N-1 in order");

// Label of a raw front-door reason; "unknown" for values newer than this build.
constexpr std::string_view xdpReasonLabel(std::uint32_t reason) {
  return reason < kXdpReasonLabels.size() ? kXdpReasonLabels[reason] : std::string_view("unknown");
}

// ---- XDP L4 fast path (bpf/xdp_l4.bpf.c) ---------------------------------------------------

static_assert(sizeof(sluice_l4_config) == 24);
static_assert(offsetof(sluice_l4_config, snat_port_lo) == 16);
static_assert(offsetof(sluice_l4_config, flags) == 20);
static_assert(sizeof(sluice_l4_svc_key) == 8);
static_assert(offsetof(sluice_l4_svc_key, port) == 4);
static_assert(sizeof(sluice_l4_service) == 16);
static_assert(offsetof(sluice_l4_service, backend_count) == 12);
static_assert(sizeof(sluice_l4_backend) == 16);
static_assert(offsetof(sluice_l4_backend, state) == 6);
static_assert(offsetof(sluice_l4_backend, service_id) == 8);
static_assert(sizeof(sluice_l4_flow_key) == 16);
static_assert(offsetof(sluice_l4_flow_key, sport) == 8);
static_assert(offsetof(sluice_l4_flow_key, proto) == 12);
static_assert(sizeof(sluice_l4_flow) == 72);
static_assert(alignof(sluice_l4_flow) == 8);
static_assert(offsetof(sluice_l4_flow, snat_addr) == 8);
static_assert(offsetof(sluice_l4_flow, backend_id) == 12);
static_assert(offsetof(sluice_l4_flow, created_ns) == 24);
static_assert(offsetof(sluice_l4_flow, bytes_out) == 64);
static_assert(sizeof(sluice_l4_rev) == 16);
static_assert(SLUICE_L4_REASON_COUNT <= SLUICE_REASON_SLOTS);

// Maps pinned by xdp_l4.bpf.c (and the front door's chain), in the order ingressctl lists them.
inline constexpr std::array<std::string_view, 9> kL4Maps = {
    SLUICE_MAP_L4_CONFIG, SLUICE_MAP_L4_SERVICES, SLUICE_MAP_L4_BACKENDS,
    SLUICE_MAP_L4_MAGLEV, SLUICE_MAP_L4_FLOWS,    SLUICE_MAP_L4_REV,
    SLUICE_MAP_L4_SNAT,   SLUICE_MAP_L4_STATS,    SLUICE_MAP_XDP_CHAIN};

constexpr bool l4NamesDistinctInKernel() {
  for (std::size_t i = 0; i < kL4Maps.size(); ++i) {
    if (kL4Maps[i].size() > 15) {
      return false;  // keep them whole in `bpftool map show`
    }
    for (std::size_t j = i + 1; j < kL4Maps.size(); ++j) {
      if (kL4Maps[i] == kL4Maps[j]) {
        return false;
      }
    }
    for (std::string_view other : kXdpMaps) {
      if (kL4Maps[i] == other.substr(0, 15)) {
        return false;
      }
    }
    for (std::string_view other : kSpliceMaps) {
      if (kL4Maps[i] == other.substr(0, 15)) {
        return false;
      }
    }
  }
  return true;
}
static_assert(l4NamesDistinctInKernel(), "L4 map names must be unique and at most 15 characters");
static_assert(std::string_view(SLUICE_XDP_PROG_L4).starts_with(SLUICE_XDP_PROG_PREFIX));

// Metric label / CLI string of an L4 reason, from SLUICE_L4_REASON_TABLE.
inline constexpr std::array<std::string_view, SLUICE_L4_REASON_COUNT> kL4ReasonLabels = {
#define SLUICE_L4_REASON_LABEL_(name, value, label) label,
    SLUICE_L4_REASON_TABLE(SLUICE_L4_REASON_LABEL_)
#undef SLUICE_L4_REASON_LABEL_
};

constexpr bool l4ReasonTableIsDense() {
  std::uint32_t next = 0;
  bool dense = true;
#define SLUICE_L4_REASON_DENSE_(name, value, label) dense = dense && (value) == next++;
  SLUICE_L4_REASON_TABLE(SLUICE_L4_REASON_DENSE_)
#undef SLUICE_L4_REASON_DENSE_
  return dense;
}
static_assert(l4ReasonTableIsDense(), "SLUICE_L4_REASON_TABLE values must be 0..N-1 in order");

constexpr std::string_view l4ReasonLabel(std::uint32_t reason) {
  return reason < kL4ReasonLabels.size() ? kL4ReasonLabels[reason] : std::string_view("unknown");
}

}  // namespace sluice::bpf
