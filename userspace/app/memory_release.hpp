// Gives back to the kernel the memory glibc's allocator holds free after a burst. glibc returns
// free memory from inside an arena only in malloc_trim(): without it the agent keeps the pages
// of every connection that came and went. Measured on 2026-12-05: 1,000 TLS connections opened
// (64 handshakes at a time) left about 1 MiB of free pages in the worker's arena, and once all
// of them had closed, the agent still had its peak RSS (31 MiB, 1.5 MiB of it in use).
//
// Once a second, on the control thread (never a worker's): when the allocator's free bytes
// (mallinfo2's fordblks) have grown by kGrowth since their lowest point after the last release,
// malloc_trim(0) hands the whole free pages back (madvise). Counted in
// sluice_memory_releases_total and sluice_memory_released_bytes_total (the fall of VmRSS).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sluice::app {

class MemoryRelease {
public:
  static constexpr std::chrono::seconds kInterval{1};
  static constexpr std::size_t kGrowth = 1024 * 1024;

  explicit MemoryRelease(boost::asio::io_context& io) : timer_(io) {}
  void start();
  void stop();

private:
  void schedule();
  void check();

  boost::asio::steady_timer timer_;
  std::size_t low_free_ = SIZE_MAX;  // the fewest free bytes seen since the last release
  bool stopped_ = false;
};

}  // namespace sluice::app
