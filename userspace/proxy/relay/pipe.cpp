#include "proxy/relay/pipe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/relay/relay.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

namespace {

class Pipe {
public:
  explicit Pipe(std::size_t bytes) {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
      r_ = fds[0];
      w_ = fds[1];
      // Best effort: without CAP_SYS_RESOURCE a user over fs.pipe-user-pages-soft gets small
      // pipes, which are slower but still correct.
      ::fcntl(w_, F_SETPIPE_SZ, static_cast<int>(bytes));
    }
  }
  ~Pipe() {
    if (r_ >= 0) {
      ::close(r_);
      ::close(w_);
    }
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  bool ok() const { return r_ >= 0; }
  int r() const { return r_; }
  int w() const { return w_; }

private:
  int r_ = -1;
  int w_ = -1;
};

// Empties the pipe into `out`; false on an error or cancellation.
asio::awaitable<bool> drain(Pipe& pipe, tcp::socket& to, std::size_t& in_pipe, std::uint64_t& moved,
                            SpliceProgress progress, void* context) {
  while (in_pipe > 0) {
    const ssize_t n = ::splice(pipe.r(), nullptr, to.native_handle(), nullptr, in_pipe,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      in_pipe -= static_cast<std::size_t>(n);
      moved += static_cast<std::uint64_t>(n);
      progress(context, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EAGAIN) {
      auto [ec] = co_await to.async_wait(tcp::socket::wait_write, kNoThrow);
      if (ec) {
        co_return false;
      }
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      co_return false;
    }
  }
  co_return true;
}

}  // namespace

asio::awaitable<SpliceEnd> spliceLoop(tcp::socket& from, tcp::socket& to, std::uint64_t limit,
                                      std::size_t pipe_bytes, SpliceProgress progress,
                                      void* context) {
  Pipe pipe(pipe_bytes);
  if (!pipe.ok()) {
    co_return SpliceEnd::kError;
  }
  std::uint64_t moved = 0;
  std::size_t in_pipe = 0;
  bool eof = false;
  while (moved < limit || in_pipe > 0) {
    if (!eof && moved + in_pipe < limit) {
      const std::uint64_t want = std::min<std::uint64_t>(limit - moved - in_pipe, 1U << 30);
      const ssize_t n = ::splice(from.native_handle(), nullptr, pipe.w(), nullptr,
                                 static_cast<std::size_t>(want), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe += static_cast<std::size_t>(n);
        progress(context, 0);
      } else if (n == 0) {
        eof = true;
      } else if (errno == EAGAIN) {
        if (in_pipe == 0) {
          auto [ec] = co_await from.async_wait(tcp::socket::wait_read, kNoThrow);
          if (ec) {
            co_return SpliceEnd::kError;
          }
          continue;
        }
      } else if (errno != EINTR) {
        co_return SpliceEnd::kError;
      }
    }
    if (!co_await drain(pipe, to, in_pipe, moved, progress, context)) {
      co_return SpliceEnd::kError;
    }
    if (eof) {
      co_return moved >= limit ? SpliceEnd::kDone : SpliceEnd::kEof;
    }
  }
  co_return SpliceEnd::kDone;
}

asio::awaitable<bool> spliceExactly(tcp::socket& from, tcp::socket& to, std::uint64_t length,
                                    std::size_t pipe_bytes, SpliceProgress progress,
                                    void* context) {
  boost::system::error_code ignored;
  from.native_non_blocking(true, ignored);
  to.native_non_blocking(true, ignored);
  const SpliceEnd end = co_await spliceLoop(from, to, length, pipe_bytes, progress, context);
  if (end == SpliceEnd::kDone) {
    auto& stats = spliceStats();
    stats.body_splices.fetch_add(1, std::memory_order_relaxed);
    stats.body_bytes.fetch_add(length, std::memory_order_relaxed);
  }
  co_return end == SpliceEnd::kDone;
}

asio::awaitable<bool> Relay::pipeDirection(tcp::socket& from, tcp::socket& to) {
  const SpliceEnd end = co_await spliceLoop(
      from, to, UINT64_MAX, config_.pipe_bytes,
      [](void* ctx, std::size_t sent) {
        auto* d = static_cast<Direction*>(ctx);
        d->relay->last_activity_ = Clock::now();
        d->counter->fetch_add(sent, std::memory_order_relaxed);
      },
      &direction(to));
  if (end == SpliceEnd::kError) {
    co_return false;
  }
  boost::system::error_code ignored;
  to.shutdown(tcp::socket::shutdown_send, ignored);
  co_return true;
}

}  // namespace sluice::proxy
