// Plain operator new/delete as an allocator, for the Asio operations that live as long as an idle
// connection: its idle wait (HttpSession::park()) and its watchdog's timer. Asio's default for a
// handler is a per-thread cache that hands out the first cached block that is large enough, so a
// 100-byte wait that then sits for minutes could hold a block sized for an accept (about 300
// bytes, measured with heaptrack). Binding this allocator (boost::asio::bind_allocator) gives such
// an operation a block of its own size.
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
