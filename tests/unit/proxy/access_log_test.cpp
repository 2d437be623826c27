// The access log's ring and writer thread, against a real pipe: lines arrive whole and in
// order; a consumer that stops reading costs dropped lines, never a blocked write().
#include "proxy/access_log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace sluice::proxy {
namespace {

using Clock = std::chrono::steady_clock;

struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end = fds[0];
    write_end = fds[1];
  }
  ~Pipe() {
    if (read_end >= 0) {
      ::close(read_end);
    }
  }
  // Reads until `n` bytes came or 5 s passed.
  std::string read(std::size_t n) const {
    std::string out;
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    char buf[4096];
    while (out.size() < n && Clock::now() < deadline) {
      pollfd p{read_end, POLLIN, 0};
      if (::poll(&p, 1, 100) == 1) {
        const ssize_t r = ::read(read_end, buf, sizeof(buf));
        if (r <= 0) {
          break;
        }
        out.append(buf, static_cast<std::size_t>(r));
      }
    }
    return out;
  }
  int read_end = -1;
  int write_end = -1;  // owned by the AccessLog
};

TEST(AccessLog, LinesArriveWholeInOrderAcrossTheRingsWrap) {
  Pipe pipe;
  AccessLog log(pipe.write_end, 100);  // small: the lines wrap around the ring many times
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    const std::string line = "{\"n\":" + std::to_string(i) + "}";
    // The ring holds a few lines; wait for room rather than drop (the writer drains it).
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (!log.write(line) && Clock::now() < deadline) {
    }
    expected += line + "\n";
  }
  EXPECT_EQ(pipe.read(expected.size()), expected);
}

TEST(AccessLog, AStuckConsumerCostsDroppedLinesNotABlockedWorker) {
  Pipe pipe;
  ASSERT_EQ(::fcntl(pipe.write_end, F_SETFL, O_NONBLOCK), 0);
  ::fcntl(pipe.write_end, F_SETPIPE_SZ, 4096);
  const std::string line(100, 'x');
  std::uint64_t dropped = 0;
  {
    AccessLog log(pipe.write_end, 8192);
    const auto start = Clock::now();
    for (int i = 0; i < 10000; ++i) {  // 1 MB into 4 KiB of pipe and 8 KiB of ring
      log.write(line);
    }
    // Nothing above waited for the consumer (generous bound: it is 10,000 memcpys).
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
    EXPECT_EQ(log.written() + log.dropped(), 10000u);
    dropped = log.dropped();
    // The destructor returns although nobody reads the pipe.
  }
  EXPECT_GT(dropped, 9000u);
  const std::string got = pipe.read(4096);
  EXPECT_FALSE(got.empty());
  EXPECT_EQ(got.substr(0, 101), line + "\n");
}

TEST(AccessLog, OpeningAPathItCannotCreateIsAClearError) {
  auto log = AccessLog::open("/nonexistent-dir/access.log");
  ASSERT_FALSE(log);
  EXPECT_NE(log.error().message().find("--access-log /nonexistent-dir/access.log"),
            std::string::npos)
      << log.error().message();
}

}  // namespace
}  // namespace sluice::proxy
