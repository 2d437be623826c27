#include "splice_maps.hpp"

#include <linux/bpf.h>

#include <array>
#include <optional>
#include <string_view>
#include <vector>

#include "bpf/abi.hpp"

namespace sluice::cli {
namespace {

std::string notPinned(const std::string& dir) {
  return "no Sluice maps pinned under " + dir + ": is ingress-agent running with BPF enabled?";
}

constexpr std::string_view kVersionHint =
    "ingress-agent and ingressctl may be from different versions";

struct Expected {
  std::uint32_t type;
  std::uint32_t key_size;
  std::uint32_t value_size;
};

// Layouts from sluice_abi.h / splice.bpf.c, in kSpliceMaps order.
constexpr std::array<Expected, 5> kLayouts = {{
    {BPF_MAP_TYPE_SOCKHASH, sizeof(sluice_flow_key), sizeof(__u64)},
    {BPF_MAP_TYPE_SOCKHASH, sizeof(sluice_flow_key), sizeof(__u64)},
    {BPF_MAP_TYPE_HASH, sizeof(sluice_flow_key), sizeof(sluice_flow)},
    {BPF_MAP_TYPE_HASH, sizeof(sluice_flow_key), sizeof(sluice_flow_stats)},
    {BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(__u64)},
}};

bool permissionDenied(int code) {
  return code == EPERM || code == EACCES;
}

std::string needsCapability(const Error& error) {
  return "reading BPF maps needs CAP_BPF (or root): " + error.message();
}

}  // namespace

Result<SpliceMaps> openSpliceMaps(const std::string& pin_dir) {
  std::string dir = pin_dir;
  while (dir.size() > 1 && dir.back() == '/') {
    dir.pop_back();
  }
  if (dir.empty()) {
    return Error(EINVAL, "--pin-dir is empty");
  }
  if (auto checked = bpf::checkPinDir(dir); !checked) {
    const int code = checked.error().code();
    if (code == ENOENT) {
      return Error(code, notPinned(dir));
    }
    if (permissionDenied(code)) {
      return Error(code, needsCapability(checked.error()));
    }
    if (code == ENOTSUP) {
      return Error(code, dir +
                             " is not on bpffs: point --pin-dir at the bpffs directory "
                             "ingress-agent pins its maps in (default " SLUICE_PIN_DIR ")");
    }
    if (code == ENOTDIR) {
      return Error(code, dir + " is not a directory");
    }
    return userError(checked.error());
  }

  std::vector<std::optional<bpf::PinnedMap>> maps;
  std::vector<std::string> missing;
  std::vector<std::string> found;
  for (std::size_t i = 0; i < bpf::kSpliceMaps.size(); ++i) {
    const std::string name(bpf::kSpliceMaps[i]);
    auto opened = bpf::PinnedMap::openReadOnly(bpf::pinPath(dir, name));
    if (!opened) {
      const int code = opened.error().code();
      if (code == ENOENT) {
        missing.push_back(name);
        maps.emplace_back();
        continue;
      }
      if (permissionDenied(code)) {
        return Error(code, needsCapability(opened.error()));
      }
      return userError(opened.error());
    }
    const Expected& want = kLayouts[i];
    if (auto layout = opened->checkLayout(want.type, want.key_size, want.value_size); !layout) {
      return Error(layout.error().code(), layout.error().context() + " (sluice_abi.h v" +
                                              std::to_string(SLUICE_ABI_VERSION) +
                                              "): " + std::string(kVersionHint));
    }
    found.push_back(name);
    maps.emplace_back(std::move(*opened));
  }
  if (found.empty()) {
    return Error(ENOENT, notPinned(dir));
  }
  if (!missing.empty()) {
    std::string names;
    for (const auto& name : missing) {
      names += (names.empty() ? "" : ", ") + name;
    }
    return Error(ENOENT, names + " not pinned under " + dir +
                             " (the other splice maps are): " + std::string(kVersionHint));
  }
  static_assert(kLayouts.size() == bpf::kSpliceMaps.size());
  return SpliceMaps{dir,
                    std::move(*maps[0]),
                    std::move(*maps[1]),
                    std::move(*maps[2]),
                    std::move(*maps[3]),
                    std::move(*maps[4])};
}

}  // namespace sluice::cli
