// Gives back to the kernel the memory glibc's allocator holds free after a burst. glibc returns
// free memory from inside an arena only in malloc_trim(): without it the agent keeps the pages
// of every connection that came and went. Measured on 2026-12-05: 1,000 TLS connections opened
// (64 handshakes at a time) left about 1 MiB of free pages in the worker's arena, and once all
// of them had closed, the agent still had its peak RSS (31 MiB, 1.5 MiB of it in use).
//
// Once a second every worker also gives back the TLS buffers it kept through a run of
// handshakes, if none has been under way since the last second (tls/block_pool.hpp).
//
// Once a second, on the control thread (never a worker's), it looks at the open connections:
// when they have fallen by kDrop from their high point since the last release (a burst has
// gone), and the last release is kMinGap old, every worker flushes its thread's block cache
// (common/thread_cache.hpp: a cached block keeps its page), and then malloc_trim(0) hands the
// allocator's whole free pages back (madvise). Nothing walks the allocator's free lists in between,
// and steady churn at a steady connection count never triggers it. Counted in
// sluice_memory_releases_total and sluice_memory_released_bytes_total (the fall of VmRSS).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sluice::app {

class MemoryRelease {
public:
  static constexpr std::chrono::seconds kInterval{1};
  static constexpr std::chrono::seconds kMinGap{10};
  static constexpr std::int64_t kDrop = 256;

  explicit MemoryRelease(boost::asio::io_context& io) : timer_(io) {}
  // Looks once a second until the control loop stops; `workers` are the loops whose threads'
  // block caches are flushed before a release.
  void start(std::vector<boost::asio::io_context*> workers);

private:
  void schedule();
  void check();
  // On every worker's thread, then here: flushes the block caches, then trim().
  void flushThenTrim();
  void trim();

  boost::asio::steady_timer timer_;
  std::vector<boost::asio::io_context*> workers_;
  std::int64_t high_ = 0;  // the most open connections since the last release
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace sluice::app
