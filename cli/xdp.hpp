// `ingressctl xdp` (the front door's attachments, settings, counters by reason and busiest
// sources) and `ingressctl deny list|add|del CIDR` (the deny tries, written directly: an emergency
// block that lasts until the agent's next reconcile makes them equal to its ConfigMap again).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "bpf/xdp_maps.hpp"
#include "common/result.hpp"
#include "render.hpp"

namespace CLI {
class App;
}

namespace sluice::cli {

struct XdpAttachmentRow {
  std::string interface;
  std::string mode;
  std::uint32_t prog_id = 0;
  std::string program;  // kernel name, or "?" when it cannot be named (needs CAP_SYS_ADMIN)
};

struct XdpModel {
  std::vector<XdpAttachmentRow> attachments;
  sluice_xdp_config config{};
  std::vector<bpf::ScopeEntry> scope;
  bpf::XdpCounters counters{};
  std::vector<bpf::SourceStats> top_sources;
  std::size_t deny_entries = 0;
};

Result<XdpModel> collectXdp(const std::string& pin_dir);
void renderXdp(const XdpModel& model, Output output, std::ostream& out);

// `deny list`, `deny add CIDR`, `deny del CIDR`: the entries after the change.
enum class DenyAction { kList, kAdd, kDelete };
Result<std::vector<bpf::DenyEntry>> runDeny(const std::string& pin_dir, DenyAction action,
                                            const std::string& cidr);
void renderDeny(const std::vector<bpf::DenyEntry>& entries, Output output, std::ostream& out);

// The subcommands, declared on `app`; run() executes whichever was parsed (false: none).
struct XdpCommands {
  CLI::App* xdp = nullptr;
  CLI::App* deny = nullptr;
  CLI::App* list = nullptr;
  CLI::App* add = nullptr;
  CLI::App* del = nullptr;
  std::string cidr;
  bool parsed() const;
  // Exit code; errors through `fail`.
  int run(const std::string& pin_dir, Output output,
          int (*fail)(Output, int, const std::string&)) const;
};
void addXdpCommands(CLI::App& app, XdpCommands& commands);

}  // namespace sluice::cli
