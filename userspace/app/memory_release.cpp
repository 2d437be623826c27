#include "app/memory_release.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "common/log.hpp"
#include "proxy/stats.hpp"

namespace sluice::app {

namespace {

// Resident bytes of this process (/proc/self/statm's second field), 0 if unreadable.
std::size_t residentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) {
    return 0;
  }
  unsigned long size = 0;
  unsigned long resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

void MemoryRelease::start() {
  schedule();
}

void MemoryRelease::schedule() {
  timer_.expires_after(kInterval);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    check();
    schedule();
  });
}

void MemoryRelease::check() {
  auto& g = proxy::globalStats();
  const std::int64_t open = g.active_connections.load(std::memory_order_relaxed);
  // The high point between two looks too: a burst can come and go within one interval.
  high_ = std::max({high_, open, g.connections_high.exchange(open, std::memory_order_relaxed)});
  const auto now = std::chrono::steady_clock::now();
  if (high_ - open < kDrop || now - last_ < kMinGap) {
    return;
  }
  const std::size_t before = residentBytes();
  ::malloc_trim(0);
  const std::size_t after = residentBytes();
  const std::size_t released = before > after ? before - after : 0;
  bump(g.memory_releases);
  bump(g.memory_released_bytes, released);
  high_ = open;
  last_ = now;
  SPDLOG_LOGGER_DEBUG(log::get("agent"), "connections fell to {}: {} KiB handed back", open,
                      released / 1024);
}

}  // namespace sluice::app
