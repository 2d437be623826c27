// A per-thread cache of small blocks in front of malloc, for operator new and delete.
//
// A keep-alive request runs about fifteen coroutines (session, request, route, forward, connect,
// the response's pump...), and each frame is an operator new and an operator delete. glibc's own
// per-thread cache holds 7 blocks of a size; at 1,000 connections one turn of the event loop
// finishes and starts dozens of requests, so most of those calls went past it into the arena's
// bins (_int_malloc, unlink_chunk, _int_free: about 7 % of the agent's CPU, measured with perf).
// Here a freed block of up to kMaxBlock bytes goes on its thread's list for its 16-byte size class
// and the next allocation of that class takes it back: two pointer moves, no lock, no bin. The
// classes are malloc's own chunk sizes (24, 40, 56, ... bytes), so no block is larger than malloc
// would have made it.
//
// Bounded: at most kMaxCachedBytes per thread; past that, and for larger blocks, malloc and free
// as before. A block freed on another thread joins that thread's cache (every block is a plain
// malloc block). A thread's cache is handed back to malloc when the thread ends.
//
// While the thread sets up connections (TLS handshakes: beginSetup()/endSetup()), freed blocks go
// back to malloc instead: malloc can then place the new connections' long-lived objects where the
// handshakes' frames were, as it did without the cache. Cached, those blocks would wait for the
// next handshake while every new connection took fresh heap (measured: 0.12 KiB more per idle TLS
// connection after a burst of 1,000). Allocations still take cached blocks meanwhile.
//
// A cached block keeps its heap page resident: before malloc_trim() hands free pages back after a
// burst (app/memory_release.hpp), each thread flushes its cache.
//
// operator_new.cpp makes this the global operator new and delete; it is linked into the agent
// executable (and the cache's own test), never into a library, and not into the sanitizer build,
// whose operator new is AddressSanitizer's. Elsewhere nothing fills the cache and flush() has
// nothing to do.
#pragma once

#include <cstddef>

namespace sluice::thread_cache {

inline constexpr std::size_t kGrain = 16;       // between size classes (24, 40, 56, ... bytes)
inline constexpr std::size_t kMaxBlock = 1032;  // a 1,040-byte chunk; larger: malloc, free
inline constexpr std::size_t kMaxCachedBytes = 4 * 1024 * 1024;  // per thread

// operator new: a cached block of n's class, or malloc (a whole class's size when n is small, so
// that the block can come back into it); the new-handler and std::bad_alloc when malloc fails.
void* allocate(std::size_t n);
// operator delete, unsized (the class comes from malloc_usable_size()) and sized.
void release(void* p) noexcept;
void release(void* p, std::size_t n) noexcept;
// A connection setup on this thread begins or ends (nested: counted).
void beginSetup() noexcept;
void endSetup() noexcept;
// Hands this thread's cached blocks back to malloc.
void flush() noexcept;
// Bytes this thread's cache holds.
std::size_t cachedBytes() noexcept;

}  // namespace sluice::thread_cache
