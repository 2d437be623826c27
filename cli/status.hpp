// `ingressctl status`: what the kernel datapath looks like right now. Programs attached to the
// sockhash, the pinned maps and how full they are, verdict counters, kernel features, and the
// splice strategy the agent reports on its admin port (when reachable).
//
// Programs: the kernel lists what is attached to a sockmap only from Linux 5.19 (BPF_PROG_QUERY,
// with CAP_NET_ADMIN), and opening a program by id needs CAP_SYS_ADMIN, which the DaemonSet does
// not grant. The agent therefore pins its verdict next to the maps; status names programs from
// that pin (CAP_BPF and file access suffice), by id only for a program that is not the pinned
// one, and on a kernel that cannot list shows the pinned verdict as "pinned by the agent
// (attachment not queryable)" instead of claiming nothing is attached.
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
    std::string name;  // kernel name, 15 characters at most
    std::string tag;
    std::string type;         // "sk_skb"
    std::string attach_type;  // "sk_skb_stream_verdict"
    std::string attached_to;  // pinned map name: "sluice_socks_v3"
    std::string attached;     // "yes" (the kernel lists it), or kPinnedNotQueryable
  };
  struct Map {
    std::string name;  // pin name (the kernel name is cut at 15 characters)
    std::string type;
    std::uint32_t id = 0;
    std::uint32_t key_size = 0;
    std::uint32_t value_size = 0;
    std::uint32_t max_entries = 0;
    std::uint64_t entries = 0;
  };
  struct Verdict {
    std::string reason;  // label from SLUICE_REASON_TABLE
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
  // Why `programs` may be incomplete ("this kernel cannot list sockmap programs (Linux < 5.19)");
  // empty when the kernel listed them.
  std::string programs_unlisted;
  std::vector<Map> maps;
  std::vector<Verdict> verdicts;
  std::vector<Feature> kernel;
  std::vector<std::string> warnings;  // partial information: what could not be read, and why
};

// StatusModel::Program::attached of the agent's pinned verdict when the kernel cannot list.
inline constexpr std::string_view kPinnedNotQueryable =
    "pinned by the agent (attachment not queryable)";

// The splice strategy string the agent reports at `/debug/state` → "splice_strategy", or
// "unknown (...)" saying why not.
std::string spliceStrategyFromAdmin(const AdminEndpoint& admin);

// Splits SpliceDatapath::probe()'s line ("kernel 6.1.0, btf yes, ...") into features.
std::vector<StatusModel::Feature> parseProbeLine(std::string_view line);

Result<StatusModel> collectStatus(const std::string& pin_dir, const AdminEndpoint& admin);

void renderStatus(const StatusModel& status, Output output, std::ostream& out);

}  // namespace sluice::cli
