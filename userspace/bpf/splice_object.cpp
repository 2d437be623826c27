#include "bpf/splice_object.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string_view>

#include "bpf/libbpf_log.hpp"
#include "bpf/pinned_maps.hpp"
#include "splice.skel.h"

namespace sluice::bpf {
namespace {

constexpr std::string_view kObjectName = "splice.bpf.o";

// The verifier's level-1 log of a refused ~150-instruction program is tens of KiB. 5.10 keeps
// the start of a log that overflows (and fails the load with ENOSPC instead of the real
// reason), so leave plenty of room; the buffer lives only for the load.
constexpr std::size_t kVerifierLogSize = 4u << 20;

// Linux 5.8 capability numbers; older <linux/capability.h> lack them.
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool isDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// Lines of a verifier log that describe the walk rather than the refusal.
bool walkLine(std::string_view line) {
  if (line.empty() || line.front() == ';' || startsWith(line, "from ") ||
      startsWith(line, "func#") || startsWith(line, "libbpf: ") ||
      startsWith(line, "verification time") || startsWith(line, "stack depth") ||
      startsWith(line, "Validating ") || startsWith(line, "last_idx") ||
      startsWith(line, "regs=") || startsWith(line, "parent ") ||
      startsWith(line, "mark_precise")) {
    return true;
  }
  // "12: (85) call bpf_skc_to_tcp_sock#137", "12: R0=..." and "12:" alone.
  const std::size_t colon = line.find(':');
  if (colon != std::string_view::npos && isDigits(line.substr(0, colon))) {
    const std::string_view rest = line.substr(colon + 1);
    return rest.empty() || startsWith(rest, " (") || startsWith(rest, " R") ||
           startsWith(rest, " frame");
  }
  return false;
}

bool hasEffective(const __user_cap_data_struct (&data)[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

// "splice.bpf.o's sluice_peers_v2 is hash key 8B value 40B, pinned ... is ..." for every map
// whose pin under `root` has another type, sizes or flags than the object wants; empty if none.
std::string pinnedLayoutMismatches(const SpliceSkel& skel, const std::string& root) {
  std::string out;
  const bpf_map* map = nullptr;
  bpf_object__for_each_map(map, skel.obj) {
    const std::string path = pinPath(root, ::bpf_map__name(map));
    auto pinned = PinnedMap::openReadOnly(path);
    if (!pinned) {
      continue;  // nothing pinned there (or unreadable): not a layout problem
    }
    if (auto same = pinned->checkLayout(::bpf_map__type(map), ::bpf_map__key_size(map),
                                        ::bpf_map__value_size(map));
        !same) {
      out += (out.empty() ? "" : "; ") + same.error().context();
      continue;
    }
    const MapInfo& info = pinned->info();
    if (info.max_entries != ::bpf_map__max_entries(map) ||
        info.map_flags != ::bpf_map__map_flags(map)) {
      out += (out.empty() ? "" : "; ") + path + " has max_entries " +
             std::to_string(info.max_entries) + " flags " + std::to_string(info.map_flags) +
             ", expected " + std::to_string(::bpf_map__max_entries(map)) + " flags " +
             std::to_string(::bpf_map__map_flags(map));
    }
  }
  return out;
}

// What the reason alone does not say: which capability or kernel feature is behind it. No ", "
// in it: the probe line separates features with that.
std::string refusalHint(const std::string& reason) {
  std::vector<std::string> missing = missingCapabilities();
  for (const auto& cap : missing) {
    if (cap == "CAP_PERFMON") {
      return "this process lacks CAP_PERFMON: the flow budget reads the peer's tcp_sock "
             "through bpf_skc_to_tcp_sock";
    }
  }
  for (std::string_view marker : {"unknown func ", "cannot use helper "}) {
    if (const std::size_t at = reason.find(marker); at != std::string::npos) {
      return "this kernel does not offer " + reason.substr(at + marker.size()) +
             " to sk_skb programs";
    }
  }
  return "";
}

// The error of a failed load, from most to least specific.
Error loadError(const Error& failed, const SpliceSkel& skel, const std::string& root,
                const std::string& verifier_log, const std::vector<std::string>& warnings) {
  const std::string program = ::bpf_program__name(skel.progs.sluice_splice_verdict);
  if (!verifier_log.empty()) {
    std::string reason = verifierReason(verifier_log);
    if (reason.empty()) {
      reason = "see the verifier log at debug level";
    }
    const std::string hint = refusalHint(reason);
    return Error("the verifier refused " + program + ": " + reason +
                 (hint.empty() ? "" : " (" + hint + ")"));
  }
  if (!root.empty()) {
    if (const std::string mismatch = pinnedLayoutMismatches(skel, root); !mismatch.empty()) {
      return Error(EINVAL, "maps pinned under " + root + " have another layout (" + mismatch +
                               "; sluice_abi.h v" + std::to_string(SLUICE_ABI_VERSION) +
                               " gives a changed map a new name: unpin the old maps or use "
                               "another pin directory)");
    }
  }
  if (failed.code() == EPERM || failed.code() == EACCES) {
    std::string lacks;
    for (const auto& cap : missingCapabilities()) {
      lacks += (lacks.empty() ? "" : ", ") + cap;
    }
    if (!lacks.empty()) {
      return failed.wrap(
          "needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (or root); this process "
          "lacks " +
          lacks);
    }
    // Every capability is there: on kernels before 5.11 the likely cause is RLIMIT_MEMLOCK,
    // which libbpf's own warning names ("try raising 'ulimit -l'?").
  }
  // What libbpf itself said is the best detail left: its memlock hint if it gave one, else its
  // first warning, which names the cause (later ones only say the object failed to load).
  for (const auto& warning : warnings) {
    if (warning.find("ulimit -l") != std::string::npos) {
      return failed.wrap(warning);
    }
  }
  return warnings.empty() ? failed : failed.wrap(warnings.front());
}

}  // namespace

std::string verifierReason(std::string_view log) {
  std::string_view reason;
  while (!log.empty()) {
    const std::size_t nl = log.find('\n');
    std::string_view line = log.substr(0, nl);
    log = nl == std::string_view::npos ? std::string_view() : log.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
      line.remove_suffix(1);
    }
    if (startsWith(line, "processed ") && !reason.empty()) {
      break;
    }
    if (!walkLine(line) && !startsWith(line, "processed ")) {
      reason = line;
    }
  }
  return std::string(reason);
}

std::vector<std::string> missingCapabilities() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) {
    return {};
  }
  const bool admin = hasEffective(data, CAP_SYS_ADMIN);
  std::vector<std::string> missing;
  const std::pair<int, const char*> needed[] = {
      {kCapBpf, "CAP_BPF"}, {kCapPerfmon, "CAP_PERFMON"}, {CAP_NET_ADMIN, "CAP_NET_ADMIN"}};
  for (const auto& [cap, name] : needed) {
    if (!admin && !hasEffective(data, cap)) {
      missing.emplace_back(name);
    }
  }
  return missing;
}

Result<Skeleton<SpliceSkel>> loadSpliceObject(const std::string& pin_root) {
  LibbpfCapture capture(/*forward=*/!pin_root.empty());
  SLUICE_TRY(auto skel, Skeleton<SpliceSkel>::openPinnedUnder(pin_root, kObjectName));
  // libbpf asks the kernel for a log only after a refusal, and then writes it here.
  std::string verifier_log(kVerifierLogSize, '\0');
  ::bpf_program__set_log_buf(skel->progs.sluice_splice_verdict, verifier_log.data(),
                             verifier_log.size());
  auto loaded = skel.load(kObjectName);
  ::bpf_program__set_log_buf(skel->progs.sluice_splice_verdict, nullptr, 0);
  if (!loaded) {
    verifier_log.resize(verifier_log.find('\0'));
    return loadError(loaded.error(), *skel.get(), pin_root, verifier_log, capture.warnings());
  }
  return skel;
}

}  // namespace sluice::bpf
