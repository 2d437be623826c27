#include "app/memory_release.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>

#include <boost/asio/post.hpp>

#include "common/log.hpp"
#include "common/thread_cache.hpp"
#include "proxy/stats.hpp"
#include "tls/block_pool.hpp"

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

void MemoryRelease::start(std::vector<boost::asio::io_context*> workers) {
  workers_ = std::move(workers);
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
  // The TLS buffers a worker kept through a run of handshakes go back once the run is over.
  for (boost::asio::io_context* io : workers_) {
    boost::asio::post(*io, [] { tls::trimAfterHandshakes(); });
  }
  auto& g = proxy::globalStats();
  const std::int64_t open = g.active_connections.load(std::memory_order_relaxed);
  // The high point between two looks too: a burst can come and go within one interval.
  high_ = std::max({high_, open, g.connections_high.exchange(open, std::memory_order_relaxed)});
  const auto now = std::chrono::steady_clock::now();
  if (high_ - open < kDrop || now - last_ < kMinGap) {
    return;
  }
  high_ = open;
  last_ = now;
  flushThenTrim();
}

void MemoryRelease::flushThenTrim() {
  thread_cache::flush();  // this thread's
  if (workers_.empty()) {
    trim();
    return;
  }
  auto pending = std::make_shared<std::atomic<std::size_t>>(workers_.size());
  for (boost::asio::io_context* io : workers_) {
    boost::asio::post(*io, [this, pending] {
      thread_cache::flush();
      if (pending->fetch_sub(1, std::memory_order_acq_rel) == 1) {
        boost::asio::post(timer_.get_executor(), [this] { trim(); });  // the last one back
      }
    });
  }
}

void MemoryRelease::trim() {
  auto& g = proxy::globalStats();
  const std::size_t before = residentBytes();
  ::malloc_trim(0);
  const std::size_t after = residentBytes();
  const std::size_t released = before > after ? before - after : 0;
  bump(g.memory_releases);
  bump(g.memory_released_bytes, released);
  SPDLOG_LOGGER_DEBUG(log::get("agent"), "connections fell: {} KiB handed back", released / 1024);
}

}  // namespace sluice::app
