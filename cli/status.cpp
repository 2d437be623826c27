#include "status.hpp"

#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <iterator>
#include <ostream>

#include "bpf/abi.hpp"
#include "bpf/pinned_maps.hpp"
#include "bpf/splice_datapath.hpp"
#include "splice_maps.hpp"

namespace sluice::cli {
namespace {

constexpr auto kAdminTimeout = std::chrono::milliseconds(1500);

// Every attach point a sockhash has; the splice datapath uses only the stream verdict, the rest
// are listed so a foreign program attached to our map does not go unnoticed.
constexpr bpf_attach_type kSockmapAttachTypes[] = {
    BPF_SK_SKB_STREAM_PARSER, BPF_SK_SKB_STREAM_VERDICT, BPF_SK_SKB_VERDICT, BPF_SK_MSG_VERDICT};

// Why BPF_PROG_QUERY could not list the sockhash's programs; empty for an error to warn about
// and carry on (the next attach type may work).
std::string unlistedReason(int code) {
  switch (code) {
    case EINVAL:
      return "this kernel cannot list sockmap programs (Linux < 5.19)";
    case EPERM:
    case EACCES:
      return "listing sockmap programs needs CAP_NET_ADMIN (or root)";
    default:
      return "";
  }
}

StatusModel::Program programRow(const bpf::ProgramInfo& info, std::uint32_t attach_type,
                                std::string attached) {
  StatusModel::Program program;
  program.id = info.id;
  program.name = info.name;
  program.tag = info.tag;
  program.type = bpf::progTypeName(info.type);
  program.attach_type = bpf::attachTypeName(attach_type);
  program.attached_to = SLUICE_MAP_SOCKS;
  program.attached = std::move(attached);
  return program;
}

// A listed program: named from the agent's pin when it is that one (no privilege beyond the pin
// directory's), else by id, which needs CAP_SYS_ADMIN.
StatusModel::Program listedProgram(std::uint32_t id, std::uint32_t attach_type,
                                   const Result<bpf::ProgramInfo>& pinned, StatusModel& status) {
  if (pinned && pinned->id == id) {
    return programRow(*pinned, attach_type, "yes");
  }
  if (auto info = bpf::programInfo(id)) {
    return programRow(*info, attach_type, "yes");
  } else {
    StatusModel::Program program = programRow({}, attach_type, "yes");
    program.id = id;
    program.name = program.tag = program.type = "?";
    status.warnings.push_back(info.error().message() +
                              (info.error().code() == EPERM ? " (needs CAP_SYS_ADMIN)" : ""));
    return program;
  }
}

void collectPrograms(const SpliceMaps& maps, StatusModel& status) {
  const std::string pin = bpf::pinPath(maps.pin_dir, bpf::kVerdictPin);
  const Result<bpf::ProgramInfo> pinned = bpf::pinnedProgramInfo(pin);
  if (!pinned && pinned.error().code() != ENOENT) {
    status.warnings.push_back(pinned.error().message());
  }
  bool pinned_listed = false;
  for (bpf_attach_type type : kSockmapAttachTypes) {
    auto ids = maps.socks.attachedPrograms(type);
    if (!ids) {
      if (ids.error().code() == EBUSY) {
        // The stream verdict and the skb verdict exclude each other: the kernel answers EBUSY
        // for one while the other is attached, so nothing is attached at this point.
        continue;
      }
      status.programs_unlisted = unlistedReason(ids.error().code());
      if (status.programs_unlisted.empty()) {
        status.warnings.push_back(ids.error().message());
        continue;
      }
      status.warnings.push_back("cannot list programs attached to " SLUICE_MAP_SOCKS ": " +
                                status.programs_unlisted);
      break;
    }
    for (std::uint32_t id : *ids) {
      status.programs.push_back(listedProgram(id, type, pinned, status));
      pinned_listed = pinned_listed || (pinned && pinned->id == id);
    }
  }
  if (!pinned) {
    return;  // an agent older than the pin, or none running: the list (if any) is all we know
  }
  if (!status.programs_unlisted.empty()) {
    status.programs.push_back(
        programRow(*pinned, BPF_SK_SKB_STREAM_VERDICT, std::string(kPinnedNotQueryable)));
  } else if (!pinned_listed) {
    status.warnings.push_back("the verdict pinned at " + pin + " (id " +
                              std::to_string(pinned->id) +
                              ") is not attached to " SLUICE_MAP_SOCKS);
  }
}

Result<void> collectMaps(const SpliceMaps& maps, StatusModel& status) {
  const bpf::PinnedMap* opened[] = {&maps.socks, &maps.targets, &maps.peers, &maps.flow_stats,
                                    &maps.verdicts};
  static_assert(std::size(opened) == bpf::kSpliceMaps.size());
  for (std::size_t i = 0; i < bpf::kSpliceMaps.size(); ++i) {
    const bpf::PinnedMap& map = *opened[i];
    auto entries = map.countEntries();
    if (!entries) {
      return userError(entries.error());
    }
    const bpf::MapInfo& info = map.info();
    status.maps.push_back(StatusModel::Map{std::string(bpf::kSpliceMaps[i]),
                                           bpf::mapTypeName(info.type), info.id, info.key_size,
                                           info.value_size, info.max_entries, *entries});
  }
  return success();
}

Result<void> collectVerdicts(const SpliceMaps& maps, StatusModel& status) {
  const bpf::PinnedMap& map = maps.verdicts;
  std::vector<std::uint64_t> per_cpu(map.valueBufferSize() / sizeof(std::uint64_t));
  for (std::uint32_t slot = 0; slot < map.info().max_entries; ++slot) {
    if (auto read = map.lookup(&slot, per_cpu.data()); !read) {
      return userError(read.error());
    }
    std::uint64_t total = 0;
    for (std::uint64_t n : per_cpu) {
      total += n;
    }
    // Every known reason, even at zero; a slot beyond this build's table only if it counted.
    if (slot < SLUICE_REASON_COUNT) {
      status.verdicts.push_back({std::string(bpf::reasonLabel(slot)), total});
    } else if (total != 0) {
      status.verdicts.push_back({"unknown(" + std::to_string(slot) + ")", total});
    }
  }
  return success();
}

Records summaryRecords(const StatusModel& s) {
  Records r({"pin_dir", "agent_admin", "splice_strategy"});
  r.add({textCell(s.pin_dir), textCell(s.agent_admin), textCell(s.splice_strategy)});
  return r;
}

Records programRecords(const StatusModel& s) {
  Records r({"id", "name", "tag", "type", "attach_type", "attached_to", "attached"});
  for (const auto& p : s.programs) {
    r.add({numberCell(p.id), textCell(p.name), textCell(p.tag), textCell(p.type),
           textCell(p.attach_type), textCell(p.attached_to), textCell(p.attached)});
  }
  return r;
}

Records mapRecords(const StatusModel& s) {
  Records r({"name", "type", "id", "key_size", "value_size", "max_entries", "entries"});
  for (const auto& m : s.maps) {
    r.add({textCell(m.name), textCell(m.type), numberCell(m.id), numberCell(m.key_size),
           numberCell(m.value_size), numberCell(m.max_entries), numberCell(m.entries)});
  }
  return r;
}

Records verdictRecords(const StatusModel& s) {
  Records r({"reason", "count"});
  for (const auto& v : s.verdicts) {
    r.add({textCell(v.reason), numberCell(v.count)});
  }
  return r;
}

Records kernelRecords(const StatusModel& s) {
  Records r({"feature", "value"});
  for (const auto& f : s.kernel) {
    r.add({textCell(f.feature), textCell(f.value)});
  }
  return r;
}

void section(std::ostream& out, std::string_view title, const Records& records,
             const std::string& when_empty) {
  out << '\n' << title << ":\n";
  if (records.empty() && !when_empty.empty()) {
    out << "  " << when_empty << '\n';
    return;
  }
  records.printTable(out, 2);
}

}  // namespace

std::vector<StatusModel::Feature> parseProbeLine(std::string_view line) {
  std::vector<StatusModel::Feature> out;
  while (!line.empty()) {
    const std::size_t comma = line.find(", ");
    std::string_view part = line.substr(0, comma);
    line = comma == std::string_view::npos ? std::string_view() : line.substr(comma + 2);
    // "<feature words> <value>", where the value is "yes", "no (why)", "not tried" or, for the
    // kernel release, a single word.
    std::size_t split = std::string_view::npos;
    for (std::string_view value : {" yes", " no (", " not tried"}) {
      if (const std::size_t at = part.find(value); at != std::string_view::npos) {
        split = std::min(split, at);
      }
    }
    if (part.size() > 3 && part.substr(part.size() - 3) == " no") {
      split = std::min(split, part.size() - 3);
    }
    if (split == std::string_view::npos) {
      split = part.find(' ');
    }
    StatusModel::Feature feature;
    std::string_view name = part.substr(0, split);
    feature.value = split == std::string_view::npos ? "" : std::string(part.substr(split + 1));
    for (char c : name) {
      feature.feature += c == ' ' ? '_' : c;
    }
    if (!feature.feature.empty()) {
      out.push_back(std::move(feature));
    }
  }
  return out;
}

std::string spliceStrategyFromAdmin(const AdminEndpoint& admin) {
  auto reply = adminGet(admin, "/debug/state", kAdminTimeout);
  if (!reply) {
    return "unknown (agent admin not reachable)";
  }
  if (reply->status != 200) {
    return "unknown (agent admin answered HTTP " + std::to_string(reply->status) + ")";
  }
  boost::system::error_code ec;
  const boost::json::value state = boost::json::parse(reply->body, ec);
  if (ec || !state.is_object()) {
    return "unknown (agent admin sent invalid JSON)";
  }
  const boost::json::value* strategy = state.as_object().if_contains("splice_strategy");
  if (strategy == nullptr || !strategy->is_string() || strategy->as_string().empty()) {
    return "unknown (agent does not report splice_strategy)";
  }
  return std::string(strategy->as_string());
}

Result<StatusModel> collectStatus(const std::string& pin_dir, const AdminEndpoint& admin) {
  auto maps = openSpliceMaps(pin_dir);
  if (!maps) {
    return maps.error();
  }
  StatusModel status;
  status.pin_dir = maps->pin_dir;
  status.agent_admin = admin.text;
  collectPrograms(*maps, status);
  if (auto collected = collectMaps(*maps, status); !collected) {
    return collected.error();
  }
  if (auto collected = collectVerdicts(*maps, status); !collected) {
    return collected.error();
  }
  status.kernel = parseProbeLine(bpf::SpliceDatapath::probe());
  status.splice_strategy = spliceStrategyFromAdmin(admin);
  return status;
}

void renderStatus(const StatusModel& status, Output output, std::ostream& out) {
  const Records summary = summaryRecords(status);
  const Records programs = programRecords(status);
  const Records maps = mapRecords(status);
  const Records verdicts = verdictRecords(status);
  const Records kernel = kernelRecords(status);
  if (output == Output::kJson) {
    boost::json::object root = summary.object(0);
    root["programs"] = programs.array();
    root["programs_unlisted"] = status.programs_unlisted.empty()
                                    ? boost::json::value(nullptr)
                                    : boost::json::value(status.programs_unlisted);
    root["maps"] = maps.array();
    root["verdicts"] = verdicts.array();
    root["kernel"] = kernel.array();
    boost::json::array warnings;
    for (const auto& w : status.warnings) {
      warnings.emplace_back(w);
    }
    root["warnings"] = std::move(warnings);
    printJson(out, root);
    return;
  }
  summary.printTable(out);
  section(out, "Programs", programs,
          status.programs_unlisted.empty() ? "none attached to " SLUICE_MAP_SOCKS
                                             " (ingress-agent detaches its verdict on exit)"
                                           : "unknown (" + status.programs_unlisted + ")");
  section(out, "Maps", maps, "");
  section(out, "Verdicts", verdicts, "");
  section(out, "Kernel", kernel, "");
  if (!status.warnings.empty()) {
    out << "\nWarnings:\n";
    for (const auto& w : status.warnings) {
      out << "  " << w << '\n';
    }
  }
}

}  // namespace sluice::cli
