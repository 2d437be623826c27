// The replaceable global operator new and delete (the sized and unsized forms; libstdc++'s array
// and nothrow forms call these), over the per-thread block cache of common/thread_cache.hpp.
// Linked into the agent executable (and the cache's own test), never into a library, and not into
// the sanitizer build, whose operator new is AddressSanitizer's.
#include <cstddef>
#include <new>

#include "common/thread_cache.hpp"

void* operator new(std::size_t n) {
  return sluice::thread_cache::allocate(n);
}

void operator delete(void* p) noexcept {
  sluice::thread_cache::release(p);
}

void operator delete(void* p, std::size_t n) noexcept {
  sluice::thread_cache::release(p, n);
}
