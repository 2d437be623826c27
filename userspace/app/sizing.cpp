#include "app/sizing.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>

namespace sluice::app {

namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr std::uint64_t kPerConnection = 64 * 1024;
constexpr std::uint64_t kBase = 64 * kMiB;
constexpr std::size_t kMin = 256;
constexpr std::size_t kMax = 1'000'000;

std::optional<std::uint64_t> readNumber(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") {
    return std::nullopt;
  }
  try {
    return std::stoull(text);
  } catch (...) {
    return std::nullopt;
  }
}

// The memory the agent may use and where the number came from.
std::pair<std::uint64_t, std::string> memoryLimit() {
  if (auto v2 = readNumber("/sys/fs/cgroup/memory.max")) {
    return {*v2, "cgroup memory.max"};
  }
  // cgroup v1 reports "no limit" as a huge number near 2^63.
  if (auto v1 = readNumber("/sys/fs/cgroup/memory/memory.limit_in_bytes");
      v1 && *v1 < (1ULL << 60)) {
    return {*v1, "cgroup memory.limit_in_bytes"};
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemTotal:") {
      return {kib * 1024, "MemTotal"};
    }
    meminfo.ignore(64, '\n');
  }
  return {1024 * kMiB, "an assumed 1 GiB"};
}

}  // namespace

void raiseFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

ConnectionSizing sizeConnections(std::size_t requested) {
  if (requested != 0) {
    return {requested, "--max-connections"};
  }
  const auto [memory, source] = memoryLimit();
  const std::uint64_t by_memory = memory > kBase ? (memory - kBase) / kPerConnection : 0;
  rlimit rl{};
  const std::uint64_t files = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
  const std::uint64_t by_files = files > 256 ? (files - 256) / 4 : 0;
  const std::size_t max = std::clamp<std::uint64_t>(std::min(by_memory, by_files), kMin, kMax);
  std::ostringstream why;
  why << "from " << source << " " << memory / kMiB << " MiB (" << by_memory
      << " at 64 KiB each) and RLIMIT_NOFILE " << files << " (" << by_files << " at 4 each)";
  return {max, why.str()};
}

}  // namespace sluice::app
