// Plain operator new/delete as an allocator, for Asio operations: those that live as long as an
// idle connection (its idle wait, HttpSession::park(); its watchdog's timer; a pooled upstream
// connection's watch) and the hot ones of a request (the wait for the upstream's response). Asio's
// default for a handler is a per-thread cache of eight blocks that hands out the first one large
// enough, so a 100-byte wait that then sits for minutes could hold a block sized for an accept
// (about 300 bytes, measured with heaptrack), and at 1,000 connections most requests missed it
// and went to malloc. Binding this allocator (boost::asio::bind_allocator) gives the operation a
// block of its own size class from the agent's per-thread block cache (common/thread_cache.hpp).
#pragma once

#include <cstddef>
#include <new>

namespace sluice {

template <typename T>
struct HeapAllocator {
  using value_type = T;
  HeapAllocator() = default;
  template <typename U>
  HeapAllocator(const HeapAllocator<U>& /*other*/) noexcept {}  // NOLINT: rebinding converts
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t /*n*/) noexcept { ::operator delete(p); }
};

template <typename T, typename U>
bool operator==(const HeapAllocator<T>& /*a*/, const HeapAllocator<U>& /*b*/) {
  return true;
}

}  // namespace sluice
