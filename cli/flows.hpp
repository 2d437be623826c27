// `ingressctl flows`: one row per spliced connection pair. The kernel maps hold socket cookies;
// addresses come from the host's socket table (sock_diag), so no agent cooperation is needed.
//
// Directions are the proxy's: "in" is what the client sent (received on the client-side socket
// and redirected to the backend), "out" is what the backend sent back.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "admin_client.hpp"
#include "common/result.hpp"
#include "render.hpp"

namespace sluice::cli {

struct FlowRow {
  std::uint64_t flow_id = 0;  // the agent's id, the same in both halves' entries
  std::string client;         // client's address as the agent's client-side socket sees it
  std::string backend;        // backend's address as the agent's backend-side socket sees it
  std::string strategy;       // "sockmap", "sockmap(pass)", or the agent's: "pipe", "copy",
                              // "adaptive(up:copy,down:pipe)"
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t pkts_in = 0;
  std::uint64_t pkts_out = 0;
  std::optional<std::uint64_t> age_seconds;  // since the pair was armed; unset if unknown
};

struct FlowsModel {
  std::vector<FlowRow> flows;
  std::vector<std::string> warnings;  // e.g. addresses that could not be resolved, and why
};

// Label of a sluice_flow.strategy value; "unknown(N)" for values newer than this build.
std::string strategyLabel(std::uint8_t strategy);

// Sockmap flows from the pinned maps, plus the agent's other relayed flows (pipe, copy,
// adaptive) from its admin port's /debug/flows; a warning says when the agent cannot be asked.
Result<FlowsModel> collectFlows(const std::string& pin_dir, const AdminEndpoint& admin);

// Table or JSON array of flows. Warnings go to `err` (JSON output stays a bare array).
void renderFlows(const FlowsModel& model, Output output, std::ostream& out, std::ostream& err);

}  // namespace sluice::cli
