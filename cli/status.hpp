// `ingressctl status`: what the kernel datapath looks like right now. Programs attached to the
// sockhash, the pinned maps and how full they are, verdict counters, kernel features, and the
// splice strategy the agent reports on its admin port (when reachable).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "admin_client.hpp"
#include "common/result.hpp"
#include "render.hpp"

namespace sluice::cli {

struct StatusModel {
  struct Program {
    std::uint32_t id = 0;
    std::string name; // kernel name, 15 characters at most
    std::string tag;
    std::string type;        // "sk_skb"
    std::string attach_type; // "sk_skb_stream_verdict"
    std::string attached_to; // pinned map name: "sluice_socks"
  };
  struct Map {
    std::string name; // pin name (the kernel name is cut at 15 characters)
    std::string type;
    std::uint32_t id = 0;
    std::uint32_t key_size = 0;
    std::uint32_t value_size = 0;
    std::uint32_t max_entries = 0;
    std::uint64_t entries = 0;
  };
  struct Verdict {
    std::string reason; // label from SLUICE_REASON_TABLE
    std::uint64_t count = 0;
  };
  struct Feature {
    std::string feature;
    std::string value;
  };

  std::string pin_dir;
  std::string agent_admin;
  std::string splice_strategy;
  std::vector<Program> programs;
  std::vector<Map> maps;
  std::vector<Verdict> verdicts;
  std::vector<Feature> kernel;
  std::vector<std::string> warnings; // partial information: what could not be read, and why
};

// The splice strategy string the agent reports at `/debug/state` → "splice_strategy", or
// "unknown (...)" saying why not.
std::string spliceStrategyFromAdmin(const AdminEndpoint& admin);

// Splits SpliceDatapath::probe()'s line ("kernel 6.1.0, btf yes, ...") into features.
std::vector<StatusModel::Feature> parseProbeLine(std::string_view line);

Result<StatusModel> collectStatus(const std::string& pin_dir, const AdminEndpoint& admin);

void renderStatus(const StatusModel& status, Output output, std::ostream& out);

} // namespace sluice::cli
