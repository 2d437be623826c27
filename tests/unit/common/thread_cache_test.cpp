// The per-thread block cache behind operator new and delete: this executable links it in place
// of libstdc++'s, as the agent does.
#include "common/thread_cache.hpp"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::thread_cache {
namespace {

// The most a block of the class that serves n bytes holds: malloc's chunk sizes less its header.
std::size_t classTop(std::size_t n) {
  return n <= 24 ? 24 : (n - 8 + kGrain - 1) / kGrain * kGrain + 8;
}

TEST(ThreadCache, AFreedBlockIsTheNextOfItsClass) {
  void* p = ::operator new(200);
  ::operator delete(p, 200);
  void* q = ::operator new(200);
  EXPECT_EQ(q, p);
  ::operator delete(q);  // unsized: the class comes from the block itself
  void* r = ::operator new(200);
  EXPECT_EQ(r, p);
  ::operator delete(r, 200);
}

TEST(ThreadCache, SizesOfOneClassShareBlocksAndEachHoldsItsWholeClass) {
  for (std::size_t n = 1; n <= kMaxBlock; n += 7) {
    void* p = ::operator new(n);
    ASSERT_GE(malloc_usable_size(p), classTop(n)) << n;
    ::operator delete(p, n);
    const std::size_t same_class = classTop(n);
    void* q = ::operator new(same_class);
    EXPECT_EQ(q, p) << n;
    std::memset(q, 0xab, same_class);  // every byte of the class is the block's
    ::operator delete(q, same_class);
  }
}

TEST(ThreadCache, ABlockIsNoLargerThanMallocMakesIt) {
  for (std::size_t n = 0; n <= kMaxBlock; ++n) {
    void* ours = ::operator new(n);
    void* plain = std::malloc(n);
    ASSERT_EQ(malloc_usable_size(ours), malloc_usable_size(plain)) << n;
    std::free(plain);
    ::operator delete(ours, n);
  }
}

TEST(ThreadCache, CountsWhatItHoldsAndTakesNothingLarge) {
  void* small = ::operator new(100);
  void* large = ::operator new(kMaxBlock + 1);
  const std::size_t before = cachedBytes();
  ::operator delete(large, kMaxBlock + 1);
  EXPECT_EQ(cachedBytes(), before);  // straight back to malloc
  ::operator delete(small, 100);
  EXPECT_EQ(cachedBytes(), before + classTop(100));
  void* again = ::operator new(100);
  EXPECT_EQ(again, small);
  EXPECT_EQ(cachedBytes(), before);
  ::operator delete(again, 100);
}

TEST(ThreadCache, HoldsNoMoreThanItsBound) {
  const std::size_t start = cachedBytes();
  std::vector<void*> blocks;
  const std::size_t n = (2 * kMaxCachedBytes) / 512;
  blocks.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    blocks.push_back(::operator new(512));
  }
  for (void* p : blocks) {
    ::operator delete(p, 512);
  }
  EXPECT_LE(cachedBytes(), kMaxCachedBytes);
  EXPECT_GT(cachedBytes(), kMaxCachedBytes - classTop(512));
  // Take them all back out (the cached ones first), so later tests start from a small cache.
  for (std::size_t i = 0; i < n; ++i) {
    blocks[i] = ::operator new(512);
  }
  EXPECT_LE(cachedBytes(), start);
  for (void* p : blocks) {
    ::operator delete(p, 512);
  }
}

TEST(ThreadCache, ABlockFreedOnAnotherThreadJoinsThatThreadsCache) {
  void* p = ::operator new(300);
  std::size_t there_before = 0;
  std::size_t there_after = 0;
  void* there_again = nullptr;
  std::thread t([&] {
    there_before = cachedBytes();
    ::operator delete(p, 300);
    there_after = cachedBytes();
    there_again = ::operator new(300);
    ::operator delete(there_again, 300);
  });
  t.join();  // and that thread's cache is handed back to malloc as it ends
  EXPECT_EQ(there_after, there_before + classTop(300));
  EXPECT_EQ(there_again, p);
}

TEST(ThreadCache, AFlushHandsEverythingBack) {
  void* a = ::operator new(64);
  void* b = ::operator new(700);
  ::operator delete(a, 64);
  ::operator delete(b);
  EXPECT_GE(cachedBytes(), classTop(64) + classTop(700));
  flush();
  EXPECT_EQ(cachedBytes(), 0u);
}

TEST(ThreadCache, WhileAConnectionIsSetUpFreedBlocksGoBackToMalloc) {
  void* a = ::operator new(200);
  void* b = ::operator new(200);
  const std::size_t before = cachedBytes();
  beginSetup();
  beginSetup();
  ::operator delete(a, 200);
  EXPECT_EQ(cachedBytes(), before);
  endSetup();
  ::operator delete(b);
  EXPECT_EQ(cachedBytes(), before);  // one setup is still under way
  endSetup();
  void* c = ::operator new(200);
  ::operator delete(c, 200);
  EXPECT_EQ(cachedBytes(), before + classTop(200));
}

TEST(ThreadCache, ZeroBytesAreDistinctBlocks) {
  void* a = ::operator new(0);
  void* b = ::operator new(0);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(a, b);
  ::operator delete(a);
  ::operator delete (b, std::size_t{0});
}

TEST(ThreadCache, ContainersWorkOverIt) {
  std::set<std::string> words;
  for (int i = 0; i < 10000; ++i) {
    words.insert("word-" + std::to_string(i % 997) +
                 std::string(static_cast<std::size_t>(i % 50), 'x'));
  }
  EXPECT_EQ(words.size(), 10000u);  // 997 and 50 are coprime: every (i % 997, i % 50) differs
  std::vector<std::vector<int>> grid(100, std::vector<int>(100, 7));
  long sum = 0;
  for (const auto& row : grid) {
    for (int v : row) {
      sum += v;
    }
  }
  EXPECT_EQ(sum, 70000);
}

}  // namespace
}  // namespace sluice::thread_cache
