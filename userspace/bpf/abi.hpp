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

}  // namespace sluice::bpf
