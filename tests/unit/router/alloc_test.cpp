// match() runs on every request on every worker: it must not allocate. Counted by replacing the
// global allocation functions for this test binary.
#if defined(__GNUC__) && !defined(__clang__)
// GCC pairs the inlined replacement delete (free) with the builtin operator new it assumes, not
// with the replacement below (which is malloc), and warns about a mismatch that does not exist.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "router/route_table.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  return operator new(size);
}
// The nothrow forms (std::stable_sort's temporary buffer uses them) must come from the same
// allocator as the deletes below, or ASan reports a mismatch.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace sluice::router {
namespace {

TEST(RouteTableAlloc, MatchDoesNotAllocate) {
  model::DesiredState s;
  s.hosts.push_back(model::VirtualHost{"", {{"/", model::PathType::kPrefix, "c0", "t/i"}}, {}});
  s.hosts.push_back(model::VirtualHost{
      "a-rather-long-host-name-that-defeats-small-string-optimisation.example.com",
      {{"/api/v1/users", model::PathType::kPrefix, "c1", "t/i"},
       {"/api", model::PathType::kExact, "c2", "t/i"}},
      "c3"});
  s.hosts.push_back(
      model::VirtualHost{"*.wildcard-suffix-long-enough-to-need-the-heap.example.com",
                         {{"/x/", model::PathType::kImplementationSpecific, "c4", "t/i"}},
                         {}});
  s.default_cluster = "c5";
  for (const char* name : {"c0", "c1", "c2", "c3", "c4", "c5"}) {
    s.clusters.push_back(model::Cluster{name, model::LbPolicy::kRoundRobin, {}});
  }
  auto table = RouteTable::compile(s);
  const std::vector<std::pair<std::string, std::string>> requests = {
      {"a-rather-long-host-name-that-defeats-small-string-optimisation.example.com",
       "/api/v1/users/123456789012345678901234567890"},
      {"a-rather-long-host-name-that-defeats-small-string-optimisation.example.com", "/api"},
      {"a-rather-long-host-name-that-defeats-small-string-optimisation.example.com", "/nope"},
      {"some-label.wildcard-suffix-long-enough-to-need-the-heap.example.com", "/x/y"},
      {"deeper.some-label.wildcard-suffix-long-enough-to-need-the-heap.example.com", "/x/y"},
      {"unknown-host-with-a-name-long-enough-for-the-heap.example.org", "/whatever/path"},
      {"", ""},
  };
  std::uint64_t sum = 0;
  g_allocations = 0;
  g_counting = true;
  for (int i = 0; i < 1000; ++i) {
    for (const auto& [host, path] : requests) {
      const Match m = table->match(host, path);
      sum += m.cluster + m.route;
    }
  }
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0);
  EXPECT_NE(sum, 0u);
}

}  // namespace
}  // namespace sluice::router
