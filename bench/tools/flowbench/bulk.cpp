// bulk: one connection moves --bytes of a pseudo-random stream one way as fast as it can; the
// receiver checks the count, the content and how the stream ended.
#include "flowbench.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cpu.hpp"

namespace sluice::bench {
namespace {

constexpr std::size_t kPatternPeriod = 65521;  // prime: a shifted or repeated chunk never matches
constexpr std::size_t kSampleStride = 4096;

// The stream's byte at offset o is pattern[o % kPatternPeriod]; the buffer repeats the period
// for kMaxChunk more bytes so any chunk starting anywhere in the period is contiguous.
std::vector<char> makePattern() {
  std::vector<char> p(kPatternPeriod + kMaxChunk);
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (std::size_t i = 0; i < kPatternPeriod; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = static_cast<char>(x >> 24);
  }
  for (std::size_t i = kPatternPeriod; i < p.size(); ++i) {
    p[i] = p[i - kPatternPeriod];
  }
  return p;
}

struct BulkSide {
  CpuSnapshot mark;  // sender: start of the interval; receiver: end
  std::uint64_t bytes = 0;
  std::uint64_t mismatches = 0;
  std::uint64_t first_mismatch = 0;
  bool eof = false;
  bool reset = false;  // ECONNRESET after every byte arrived, instead of an EOF
};

void bulkSend(int fd, const Options& o, const std::vector<char>& pattern, BulkSide& side) {
  side.mark = snapshotBegin();
  std::uint64_t sent = 0;
  while (sent < o.bytes) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(o.chunk, o.bytes - sent));
    ssize_t w = ::send(fd, pattern.data() + sent % kPatternPeriod, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        throw Failure("stalled: could not send for " + std::to_string(o.stall_timeout_s) +
                      " s after " + std::to_string(sent) + " bytes");
      }
      failErrno("send after " + std::to_string(sent) + " bytes");
    }
    sent += static_cast<std::uint64_t>(w);
  }
  side.bytes = sent;
  if (::shutdown(fd, SHUT_WR) != 0) {
    failErrno("shutdown(SHUT_WR)");
  }
  // Wait for the receiver's close so our close never turns into a reset mid-stream.
  std::array<char, 4096> sink{};
  while (::recv(fd, sink.data(), sink.size(), 0) > 0) {
  }
}

// Whether the `n` bytes at stream offset `offset` differ from the pattern, as far as `verify`
// looks: all of them, or the 8 bytes at each 4 KiB boundary of the stream inside them.
bool differs(Verify verify, const std::vector<char>& pattern, std::uint64_t offset, const char* got,
             std::size_t n) {
  const char* want = pattern.data() + offset % kPatternPeriod;
  if (verify == Verify::kNone) {
    return false;
  }
  if (verify == Verify::kFull) {
    return std::memcmp(got, want, n) != 0;
  }
  std::uint64_t first = (offset + kSampleStride - 1) / kSampleStride * kSampleStride;
  for (std::uint64_t off = first; off < offset + n; off += kSampleStride) {
    std::size_t at = static_cast<std::size_t>(off - offset);
    std::size_t len = std::min<std::size_t>(8, n - at);
    if (std::memcmp(got + at, want + at, len) != 0) {
      return true;
    }
  }
  return false;
}

void bulkReceive(int fd, const Options& o, const std::vector<char>& pattern, BulkSide& side) {
  std::vector<char> buf(o.chunk);
  std::uint64_t got = 0;
  bool marked = false;
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == ECONNRESET && marked) {
        side.reset = true;
        break;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (got < o.bytes) {
          throw Failure("stalled: no data for " + std::to_string(o.stall_timeout_s) + " s after " +
                        std::to_string(got) + " of " + std::to_string(o.bytes) + " bytes");
        }
        break;  // all bytes arrived, but no EOF: reported as eof=false
      }
      failErrno("recv after " + std::to_string(got) + " bytes");
    }
    if (r == 0) {
      side.eof = true;
      break;
    }
    auto n = static_cast<std::size_t>(r);
    if (differs(o.verify, pattern, got, buf.data(), n) && side.mismatches++ == 0) {
      side.first_mismatch = got;
    }
    got += n;
    if (!marked && got >= o.bytes) {
      side.mark = snapshotEnd();
      marked = true;
      setTimeout(fd, SO_RCVTIMEO, std::min(o.stall_timeout_s, 5.0));  // the wait for EOF
    }
  }
  side.bytes = got;
  if (!marked) {
    throw Failure("connection closed after " + std::to_string(got) + " of " +
                  std::to_string(o.bytes) + " bytes");
  }
}

// Runs the server (accept, then receive or send) on a thread and the client here; both sides'
// failures are reported together.
void transfer(const Options& o, int listener, const Endpoint& target,
              const std::vector<char>& pattern, BulkSide& server, BulkSide& client) {
  Worker server_thread([&] {
    Fd fd = acceptOne(listener, o.connect_timeout_s + 5);
    setStallTimeouts(fd.get(), o.stall_timeout_s);
    if (o.upload) {
      bulkReceive(fd.get(), o, pattern, server);
    } else {
      bulkSend(fd.get(), o, pattern, server);
    }
  });
  std::string client_error;
  try {
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<int>(o.connect_timeout_s * 1000));
    Fd fd = connectRetrying(target, deadline);
    setStallTimeouts(fd.get(), o.stall_timeout_s);
    if (o.upload) {
      bulkSend(fd.get(), o, pattern, client);
    } else {
      bulkReceive(fd.get(), o, pattern, client);
    }
  } catch (const std::exception& e) {
    client_error = e.what();
    // Unblock a server still waiting in accept: nothing will arrive.
    ::shutdown(listener, SHUT_RDWR);
  }
  std::string server_error = server_thread.join();
  if (!client_error.empty()) {
    throw Failure("client: " + client_error +
                  (server_error.empty() ? "" : "; server: " + server_error));
  }
  if (!server_error.empty()) {
    throw Failure("server: " + server_error);
  }
}

// Every byte, and only the bytes sent, with the content intact.
void checkReceived(const Options& o, const BulkSide& receiver) {
  std::string content;
  if (receiver.mismatches != 0) {
    content = "content mismatch in " + std::to_string(receiver.mismatches) +
              " reads, the first one starting at stream offset " +
              std::to_string(receiver.first_mismatch);
  }
  if (receiver.bytes != o.bytes) {
    throw Failure("receiver got " + std::to_string(receiver.bytes) + " bytes, sender sent " +
                  std::to_string(o.bytes) + "; " + (content.empty() ? "content intact" : content));
  }
  if (!content.empty()) {
    throw Failure(content);
  }
}

std::string bulkJson(const Options& o, const Endpoint& listen, const Endpoint& target,
                     const BulkSide& receiver, const CpuReport& cpu) {
  const double mib = static_cast<double>(o.bytes) / (1 << 20);
  const double gib = static_cast<double>(o.bytes) / (1 << 30);
  JsonLine j;
  j.add("ok", true)
      .add("mode", "bulk")
      .add("label", o.label)
      .add("direction", o.upload ? "up" : "down")
      .add("server", listen.text)
      .add("connect", target.text)
      .add("bytes", o.bytes)
      .add("verify", o.verify == Verify::kFull      ? "full"
                     : o.verify == Verify::kSampled ? "sampled"
                                                    : "none")
      .add("eof", receiver.eof)
      .add("close", receiver.eof     ? "eof"
                    : receiver.reset ? "reset"
                                     : "none")
      .add("seconds", cpu.seconds, 4)
      .add("mib_per_s", mib / cpu.seconds, 1);
  addCpu(j, cpu);
  j.add("cpu_seconds_per_gib", cpu.system_busy_s / gib, 3);
  return j.str();
}

}  // namespace

std::string runBulk(const Options& o) {
  Endpoint listen = o.listen;
  Fd listener = listenOn(listen);
  Endpoint target = o.connect.value_or(listen);
  const std::vector<char> pattern = makePattern();
  BulkSide server, client;
  transfer(o, listener.get(), target, pattern, server, client);

  const BulkSide& sender = o.upload ? client : server;
  const BulkSide& receiver = o.upload ? server : client;
  checkReceived(o, receiver);
  // The interval runs from the sender's first write to the receiver holding the last byte.
  CpuReport cpu = cpuBetween(sender.mark, receiver.mark, o.proxy_pids);
  return bulkJson(o, listen, target, receiver, cpu);
}

}  // namespace sluice::bench
