#include "proxy/access_log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace sluice::proxy {

namespace {

std::atomic<AccessLog*> g_log{nullptr};

constexpr auto kBatchInterval = std::chrono::milliseconds(100);

// Writes all of `data` to `fd`, waiting while a non-blocking fd is full (unless the log is
// stopping); false on an error that will not go away: those lines are dropped, not retried.
bool writeAll(int fd, const char* data, std::size_t n, const std::atomic<bool>& stopping) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w > 0) {
      data += w;
      n -= static_cast<std::size_t>(w);
    } else if (w < 0 && errno == EAGAIN && !stopping.load()) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<AccessLog>> AccessLog::open(const std::string& where, std::size_t capacity) {
  int fd = -1;
  if (where == "stdout") {
    fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  } else {
    fd = ::open(where.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
  }
  if (fd < 0) {
    return errnoError("--access-log " + where);
  }
  return std::make_unique<AccessLog>(fd, capacity);
}

AccessLog::AccessLog(int fd, std::size_t capacity) : fd_(fd), ring_(capacity) {
  writer_ = std::thread([this] { drain(); });
}

AccessLog::~AccessLog() {
  {
    std::lock_guard lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_one();
  writer_.join();
  ::close(fd_);
}

bool AccessLog::write(std::string_view line) {
  const std::size_t n = line.size() + 1;
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (size_ + n > ring_.size()) {
      ++dropped_;
      return false;
    }
    std::size_t tail = (head_ + size_) % ring_.size();
    const std::size_t first = std::min(line.size(), ring_.size() - tail);
    std::memcpy(ring_.data() + tail, line.data(), first);
    std::memcpy(ring_.data(), line.data() + first, line.size() - first);
    tail = (tail + line.size()) % ring_.size();
    ring_[tail] = '\n';
    const bool was_below_half = size_ < ring_.size() / 2;
    size_ += n;
    ++written_;
    wake = was_below_half && size_ >= ring_.size() / 2;
  }
  if (wake) {
    wake_.notify_one();
  }
  return true;
}

void AccessLog::drain() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (size_ == 0) {
      if (stopping_) {
        return;
      }
      wake_.wait_for(lock, kBatchInterval);
      continue;
    }
    // The contiguous run from head_; the rest (after a wrap) goes in the next round.
    const std::size_t n = std::min(size_, ring_.size() - head_);
    const char* data = ring_.data() + head_;
    lock.unlock();
    const bool ok =
        writeAll(fd_, data, n, stopping_);  // the writers never touch [head_, head_ + n)
    lock.lock();
    head_ = (head_ + n) % ring_.size();
    size_ -= n;
    if (!ok) {
      // A consumer that is gone (EPIPE, EBADF): what is queued cannot be written either.
      head_ = size_ = 0;
    }
    if (size_ < ring_.size() / 2 && !stopping_) {
      wake_.wait_for(lock, kBatchInterval);
    }
  }
}

std::uint64_t AccessLog::written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

std::uint64_t AccessLog::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

void AccessLog::renderMetrics(admin::MetricsWriter& out) const {
  out.counter("sluice_access_log_lines_total", "Access-log lines queued for the writer.",
              written());
  out.counter("sluice_access_log_dropped_total",
              "Access-log lines dropped because the writer was behind (the ring was full).",
              dropped());
}

AccessLog* accessLog() {
  return g_log.load(std::memory_order_acquire);
}

void setAccessLog(AccessLog* log) {
  g_log.store(log, std::memory_order_release);
}

}  // namespace sluice::proxy
