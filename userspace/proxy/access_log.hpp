// The access log: one JSON line per request. A worker never blocks on it: write() copies the
// line into a bounded byte ring under a short lock (or counts it dropped when the ring is full),
// and one writer thread drains the ring to stdout or a file in batches, every 100 ms or as soon
// as the ring is half full. A slow or stuck consumer (a full pipe, a slow disk) costs lines,
// counted in sluice_access_log_dropped_total, never a worker's time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "admin/metrics.hpp"
#include "common/result.hpp"

namespace sluice::proxy {

class AccessLog {
public:
  static constexpr std::size_t kDefaultCapacity = 1 << 20;

  // "stdout", or a file path (created 0640 or appended to).
  static Result<std::unique_ptr<AccessLog>> open(const std::string& where,
                                                 std::size_t capacity = kDefaultCapacity);
  // Writes to `fd`, which the log then owns (tests: a pipe).
  AccessLog(int fd, std::size_t capacity);
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;
  // Drains what is queued (bounded by the consumer), then stops the writer.
  ~AccessLog();

  // Queues `line` plus a newline; never blocks on I/O. False if it was dropped.
  bool write(std::string_view line);

  std::uint64_t written() const;
  std::uint64_t dropped() const;
  // sluice_access_log_lines_total, sluice_access_log_dropped_total.
  void renderMetrics(admin::MetricsWriter& out) const;

private:
  void drain();

  const int fd_;
  std::vector<char> ring_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::size_t head_ = 0;  // next byte to read
  std::size_t size_ = 0;  // bytes queued
  std::uint64_t written_ = 0;
  std::uint64_t dropped_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread writer_;
};

// The process's access log, or null when it is off; set once at startup, before any worker.
AccessLog* accessLog();
void setAccessLog(AccessLog* log);

}  // namespace sluice::proxy
