#include "tls/block_pool.hpp"

#include <openssl/crypto.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace sluice::tls {

namespace {

// Slots are made writable this many at a time, as they are first needed: the region's address
// space costs nothing, and memory that was never writable is not charged to the process even
// under strict overcommit.
constexpr std::size_t kGrowSlots = 32;

}  // namespace

BlockPool::BlockPool(std::size_t region_bytes) {
  const std::size_t slots = region_bytes / kSlotBytes;
  if (slots == 0) {
    return;
  }
  void* base = ::mmap(nullptr, slots * kSlotBytes, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    return;
  }
  // Small pages only: a transparent huge page would make a whole 2 MiB resident at a buffer's
  // first write, and a slot's release would only split it.
  ::madvise(base, slots * kSlotBytes, MADV_NOHUGEPAGE);
  base_ = static_cast<std::byte*>(base);
  slots_ = slots;
  released_.reserve(slots);  // never grows under a free: 4 bytes per slot, touched as used
}

BlockPool::~BlockPool() {
  if (base_ != nullptr) {
    ::munmap(base_, slots_ * kSlotBytes);
  }
}

void* BlockPool::allocate(Front* front) {
  if (front != nullptr && front->count > 0) {
    return front->slots[--front->count];
  }
  const std::lock_guard lock(mutex_);
  if (!released_.empty()) {
    const std::uint32_t slot = released_.back();
    released_.pop_back();
    return base_ + std::size_t{slot} * kSlotBytes;
  }
  if (mapped_ == slots_) {
    ++overflows_;
    return nullptr;
  }
  if (mapped_ % kGrowSlots == 0) {
    const std::size_t n = std::min(kGrowSlots, slots_ - mapped_);
    if (::mprotect(base_ + mapped_ * kSlotBytes, n * kSlotBytes, PROT_READ | PROT_WRITE) != 0) {
      ++overflows_;
      return nullptr;
    }
  }
  return base_ + (mapped_++) * kSlotBytes;
}

void BlockPool::deallocate(Front* front, void* p) {
  if (front != nullptr) {
    const std::size_t keep = front->handshakes > 0 ? kKeepDuringHandshakes : kKeepPerThread;
    if (front->count < keep) {
      front->slots[front->count++] = p;
      return;
    }
  }
  release(p);
}

void BlockPool::trim(Front& front, std::size_t keep) {
  while (front.count > keep) {
    release(front.slots[--front.count]);
  }
}

void BlockPool::drain(Front& front) {
  while (front.count > 0) {
    release(front.slots[--front.count]);
  }
}

void BlockPool::release(void* p) {
  // The next use of the slot finds zeroed pages, faulted in as it writes them.
  ::madvise(p, kSlotBytes, MADV_DONTNEED);
  const auto slot = static_cast<std::uint32_t>((static_cast<std::byte*>(p) - base_) / kSlotBytes);
  const std::lock_guard lock(mutex_);
  released_.push_back(slot);
  ++releases_;
}

BlockPool::Stats BlockPool::stats() const {
  const std::lock_guard lock(mutex_);
  return Stats{slots_, mapped_, released_.size(), releases_, overflows_};
}

namespace {

// 512 MiB of address space: 21,845 slots, which is more buffers than a worker holds at once
// short of thousands of TLS connections all blocked mid-write. Past it, served sizes go to malloc.
constexpr std::size_t kRegionBytes = std::size_t{512} << 20;

BlockPool* g_pool = nullptr;

// A thread's freed slots. When the thread exits, the guard gives them back and later frees (from
// other thread-local destructors, OpenSSL's among them) go straight to the shared list.
thread_local BlockPool::Front t_front;
thread_local bool t_exited = false;
struct FrontGuard {
  FrontGuard(const FrontGuard&) = delete;
  FrontGuard& operator=(const FrontGuard&) = delete;
  FrontGuard() = default;
  ~FrontGuard() {
    t_exited = true;
    g_pool->drain(t_front);
  }
};
thread_local FrontGuard t_guard;

// The calling thread's kept slots, or none once it is exiting. Its guard, which drains them at
// the exit, exists from the thread's first slot on: constructed later (at a first free from
// OpenSSL's own thread-exit handlers, after the thread-local destructors ran) it would never run,
// and the slots would be stranded.
BlockPool::Front* threadFront() {
  if (t_exited) {
    return nullptr;
  }
  (void)&t_guard;
  return &t_front;
}

void* allocateHook(std::size_t n, const char* /*file*/, int /*line*/) {
  if (n == 0) {
    return nullptr;  // as OpenSSL's own CRYPTO_malloc
  }
  if (BlockPool::serves(n)) {
    if (void* p = g_pool->allocate(threadFront())) {
      return p;
    }
  }
  return std::malloc(n);
}

void freeHook(void* p, const char* /*file*/, int /*line*/) {
  if (p == nullptr || !g_pool->owns(p)) {
    std::free(p);
    return;
  }
  g_pool->deallocate(threadFront(), p);
}

void* reallocateHook(void* p, std::size_t n, const char* file, int line) {
  if (p == nullptr) {
    return allocateHook(n, file, line);
  }
  if (n == 0) {
    freeHook(p, file, line);  // as OpenSSL's own CRYPTO_realloc
    return nullptr;
  }
  if (!g_pool->owns(p)) {
    return std::realloc(p, n);
  }
  if (n <= BlockPool::kSlotBytes) {
    return p;  // the slot already holds it
  }
  void* q = std::malloc(n);
  if (q != nullptr) {
    std::memcpy(q, p, BlockPool::kSlotBytes);
    freeHook(p, file, line);
  }
  return q;
}

const char* g_problem = "installOpenSslAllocator() was not called";

}  // namespace

bool installOpenSslAllocator() {
  // Never destroyed: buffers may still be freed while the process exits.
  static auto* pool = new BlockPool(kRegionBytes);
  if (!pool->ok()) {
    g_problem = "no address space for its region (mmap failed)";
    return false;
  }
  g_pool = pool;
  if (CRYPTO_set_mem_functions(allocateHook, reallocateHook, freeHook) != 1) {
    g_pool = nullptr;
    g_problem = "OpenSSL had already allocated memory";
    return false;
  }
  g_problem = nullptr;
  return true;
}

void handshakeBegins() {
  if (g_pool != nullptr) {
    if (BlockPool::Front* front = threadFront()) {
      ++front->handshakes;
      front->recent = true;
    }
  }
}

void handshakeEnds() {
  if (g_pool == nullptr) {
    return;
  }
  BlockPool::Front* front = threadFront();
  // Ended on another thread than it began (a session destroyed at shutdown): nothing to undo.
  if (front == nullptr || front->handshakes == 0) {
    return;
  }
  --front->handshakes;
  front->recent = true;
}

void trimAfterHandshakes() {
  if (g_pool == nullptr) {
    return;
  }
  BlockPool::Front* front = threadFront();
  if (front == nullptr || front->handshakes > 0) {
    return;
  }
  if (!std::exchange(front->recent, false)) {
    g_pool->trim(*front, BlockPool::kKeepPerThread);
  }
}

const char* openSslAllocatorProblem() {
  return g_problem;
}

const BlockPool* openSslBlockPool() {
  return g_pool;
}

}  // namespace sluice::tls
