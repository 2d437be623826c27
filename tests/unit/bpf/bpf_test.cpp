// The parts of userspace/bpf that need no privilege: the ABI's reason table and pin directory,
// and socket cookies (SO_COOKIE works for any process).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "bpf/abi.hpp"
#include "bpf/splice_datapath.hpp"

namespace sluice::bpf {
namespace {

TEST(Abi, ReasonLabelsAreDistinctSnakeCaseWords) {
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < SLUICE_REASON_COUNT; ++i) {
    const std::string_view label = kReasonLabels[i];
    EXPECT_FALSE(label.empty()) << i;
    EXPECT_EQ(label.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string_view::npos)
        << label;
    EXPECT_TRUE(seen.insert(label).second) << "duplicate label " << label;
  }
  EXPECT_EQ(kPinDir, "/sys/fs/bpf/sluice");
}

TEST(SpliceDatapath, SocketCookiesAreStableAndDistinct) {
  int a = ::socket(AF_INET, SOCK_STREAM, 0);
  int b = ::socket(AF_INET, SOCK_STREAM, 0);
  auto ca = SpliceDatapath::socketCookie(a);
  auto cb = SpliceDatapath::socketCookie(b);
  ASSERT_TRUE(ca && cb);
  EXPECT_NE(*ca, *cb);
  EXPECT_EQ(*SpliceDatapath::socketCookie(a), *ca);
  ::close(a);
  ::close(b);
  auto bad = SpliceDatapath::socketCookie(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), EBADF);
}

}  // namespace
}  // namespace sluice::bpf
