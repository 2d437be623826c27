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
  stopped_ = false;
  low_free_ = ::mallinfo2().fordblks;  // a burst in the first second counts too
  schedule();
}

void MemoryRelease::stop() {
  stopped_ = true;
  timer_.cancel();
}

void MemoryRelease::schedule() {
  timer_.expires_after(kInterval);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) {
      return;
    }
    check();
    schedule();
  });
}

void MemoryRelease::check() {
  const std::size_t free_bytes = ::mallinfo2().fordblks;
  low_free_ = std::min(low_free_, free_bytes);
  if (free_bytes - low_free_ < kGrowth) {
    return;
  }
  const std::size_t before = residentBytes();
  ::malloc_trim(0);
  const std::size_t after = residentBytes();
  const std::size_t released = before > after ? before - after : 0;
  auto& g = proxy::globalStats();
  bump(g.memory_releases);
  bump(g.memory_released_bytes, released);
  low_free_ = free_bytes;
  SPDLOG_LOGGER_DEBUG(log::get("agent"), "allocator: {} KiB free, {} KiB handed back",
                      free_bytes / 1024, released / 1024);
}

}  // namespace sluice::app
