// Byte streams for tests that move data through the agent: a seeded stream any piece of which can
// be regenerated, an incremental SHA-256, and senders and receivers that digest gigabytes
// without storing them, and tell reordering from corruption when the digests differ.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "support/sockets.hpp"

namespace sluice::test {

using namespace std::chrono_literals;
inline constexpr std::uint64_t kMiB = 1ULL << 20;

// A deterministic byte stream (splitmix64): the same seed gives the same bytes however the
// stream is cut into pieces.
class ByteStream {
public:
  explicit ByteStream(std::uint64_t seed) : state_(seed) {}
  void fill(void* out, std::size_t n);
  std::string take(std::size_t n);

private:
  std::uint64_t next();
  std::uint64_t state_;
  std::uint64_t word_ = 0;
  unsigned left_ = 0;  // bytes of word_ not handed out yet
};

// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  std::string hex();  // finalizes

private:
  void* ctx_;
};

// SHA-256 of the first `n` bytes of ByteStream(seed).
std::string streamSha256(std::uint64_t seed, std::uint64_t n);
std::string sha256Hex(std::string_view data);
// Lower-case hex of a digest.
std::string toHex(const unsigned char* data, std::size_t size);

struct StreamResult {
  std::uint64_t bytes = 0;
  std::string sha;
  bool ok = false;  // all `n` bytes moved
  std::string error;
  // With an expected seed: where the received bytes first differ from the stream, and the 64
  // bytes received there (see describeMismatch).
  std::optional<std::uint64_t> first_mismatch;
  std::string mismatch_bytes;
};

// Where the bytes received at `r.first_mismatch` were sent: searches ByteStream(seed) within
// +-64 MiB, so a report can tell reordering (found elsewhere) from corruption (not found).
std::string describeMismatch(const StreamResult& r, std::uint64_t seed);
// Sends the first `n` bytes of ByteStream(seed); the digest is of what was handed to send().
StreamResult sendStream(int fd, std::uint64_t seed, std::uint64_t n);
// Receives exactly `n` bytes and digests them; a stall of 30 s, EOF or an error ends it early.
// With `expect_seed`, also finds the first byte that differs from ByteStream(expect_seed).
StreamResult recvStream(int fd, std::uint64_t n,
                        std::optional<std::uint64_t> expect_seed = std::nullopt);
// Receives until EOF (or error/stall), digesting.
StreamResult recvToEof(int fd, std::chrono::milliseconds stall = 30s);

// Pushes ByteStream bytes on a non-blocking socket until `limit` bytes were accepted, nothing
// was accepted for `stall`, or `cap` passed. Samples /proc/net/sockstat TCP mem meanwhile.
struct PushResult {
  std::uint64_t accepted = 0;
  bool stalled = false;
  long mem_base_pages = 0;
  long mem_peak_pages = 0;
  std::string error;
  int error_code = 0;  // errno of the failed send
};

// The push ended because the flow was reset under it (the agent resets both sides).
bool endedByReset(const PushResult& r);

class Pusher {
public:
  explicit Pusher(std::uint64_t seed) : bytes_(seed) {}

  PushResult pushUntilStalled(int fd, std::uint64_t limit, std::chrono::milliseconds stall,
                              std::chrono::milliseconds cap) {
    PushResult r;
    r.mem_base_pages = r.mem_peak_pages = tcpMemPages();
    const auto end = SteadyClock::now() + cap;
    auto last_progress = SteadyClock::now();
    const std::uint64_t start = sent_;
    while (sent_ - start < limit && SteadyClock::now() < end) {
      refill();
      ssize_t n = ::send(fd, pending_.data() + offset_, pending_.size() - offset_,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        offset_ += static_cast<std::size_t>(n);
        sent_ += static_cast<std::uint64_t>(n);
        last_progress = SteadyClock::now();
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        r.error_code = errno;
        r.error = std::string("send: ") + std::strerror(r.error_code);
        break;
      }
      r.mem_peak_pages = std::max(r.mem_peak_pages, tcpMemPages());
      if (SteadyClock::now() - last_progress >= stall) {
        r.stalled = true;
        break;
      }
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
    }
    r.mem_peak_pages = std::max(r.mem_peak_pages, tcpMemPages());
    r.accepted = sent_ - start;
    return r;
  }

  // Blocking: sends `n` more bytes of the stream (the unsent rest of the last chunk first).
  bool sendMore(int fd, std::uint64_t n) {
    std::uint64_t left = n;
    while (left > 0) {
      refill();
      const std::size_t k =
          static_cast<std::size_t>(std::min<std::uint64_t>(left, pending_.size() - offset_));
      if (!sendAll(fd, std::string_view(pending_.data() + offset_, k), 30s)) {
        return false;
      }
      offset_ += k;
      sent_ += k;
      left -= k;
    }
    return true;
  }

  std::uint64_t sent() const { return sent_; }

private:
  void refill() {
    if (offset_ < pending_.size()) {
      return;
    }
    pending_.resize(256 * 1024);
    bytes_.fill(pending_.data(), pending_.size());
    offset_ = 0;
  }

  ByteStream bytes_;
  std::string pending_;
  std::size_t offset_ = 0;
  std::uint64_t sent_ = 0;
};

}  // namespace sluice::test
