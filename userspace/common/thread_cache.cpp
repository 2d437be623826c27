// The per-thread block cache behind the agent's operator new and delete: thread_cache.hpp says
// why and how; operator_new.cpp installs it.
#include "common/thread_cache.hpp"

#include <malloc.h>
#include <pthread.h>

#include <cstddef>
#include <cstdlib>
#include <new>

namespace sluice::thread_cache {

namespace {

constexpr std::size_t kHeader = 8;  // glibc's size field in front of each block (64-bit)
static_assert(sizeof(void*) == 8 && alignof(std::max_align_t) == 16,
              "the size classes follow 64-bit glibc's chunk sizes");
constexpr std::size_t kClasses = (kMaxBlock - kHeader) / kGrain;

struct Block {
  Block* next;
};

// Trivially constructed and destroyed, so the thread_local needs no guard on each access.
struct Cache {
  Block* head[kClasses + 1];  // by size class, 1..kClasses (0: unused)
  std::size_t bytes;
  int setups;       // connection setups under way (beginSetup()); may dip below 0 at shutdown
  bool registered;  // the hand-back at thread exit is set up
  bool closed;      // the thread is ending: plain malloc and free from here on
};

thread_local Cache t_cache;
pthread_key_t g_exit_key;
pthread_once_t g_exit_once = PTHREAD_ONCE_INIT;

// At thread exit (a pthread key's destructor: these run after the thread's C++ thread_local
// destructors, which may still free blocks into the cache).
void handBack(void* /*cache*/) {
  t_cache.closed = true;
  flush();
}

void makeExitKey() {
  // Without the key a thread's cache is not handed back when it ends: at most kMaxCachedBytes
  // per thread that ever freed a block, and the agent's threads live as long as it does.
  (void)pthread_key_create(&g_exit_key, handBack);
}

// Class k holds blocks of k * 16 + 8 bytes: what malloc's chunks of k * 16 + 16 bytes carry, so a
// block costs no more than malloc would give for the same request.
constexpr std::size_t capacity(std::size_t cls) {
  return cls * kGrain + kHeader;
}
constexpr std::size_t classOf(std::size_t n) {
  return n <= capacity(1) ? 1 : (n - kHeader + kGrain - 1) / kGrain;
}

}  // namespace

void* allocate(std::size_t n) {
  std::size_t bytes = n;
  if (n <= kMaxBlock) {
    const std::size_t cls = classOf(n);
    Cache& c = t_cache;
    if (Block* b = c.head[cls]; b != nullptr) {
      c.head[cls] = b->next;
      c.bytes -= capacity(cls);
      return b;
    }
    bytes = capacity(cls);  // a whole class, so that the block can come back into it
  }
  for (;;) {
    if (void* p = std::malloc(bytes); p != nullptr) {
      return p;
    }
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      throw std::bad_alloc();
    }
    handler();
  }
}

namespace {

void releaseToClass(void* p, std::size_t cls) noexcept {
  Cache& c = t_cache;
  const std::size_t bytes = capacity(cls);
  if (cls == 0 || cls > kClasses || c.closed || c.setups > 0 || c.bytes + bytes > kMaxCachedBytes) {
    std::free(p);
    return;
  }
  if (!c.registered) {
    c.registered = true;
    pthread_once(&g_exit_once, makeExitKey);
    (void)pthread_setspecific(g_exit_key, &c);  // non-null, so that handBack() runs at exit
  }
  auto* b = static_cast<Block*>(p);
  b->next = c.head[cls];
  c.head[cls] = b;
  c.bytes += bytes;
}

}  // namespace

void release(void* p) noexcept {
  if (p == nullptr) {
    return;
  }
  // The class the block can serve, from what malloc says it holds: capacity(cls) for a block
  // from malloc(capacity(cls)), or more if malloc gave a larger chunk.
  const std::size_t usable = malloc_usable_size(p);
  releaseToClass(p, usable < capacity(1) ? 0 : (usable - kHeader) / kGrain);
}

void release(void* p, std::size_t n) noexcept {
  if (p != nullptr) {
    releaseToClass(p, n <= kMaxBlock ? classOf(n) : 0);
  }
}

void beginSetup() noexcept {
  ++t_cache.setups;
}

void endSetup() noexcept {
  --t_cache.setups;  // a frame destroyed on another thread at shutdown: that thread's goes below 0
}

void flush() noexcept {
  Cache& c = t_cache;
  for (Block*& head : c.head) {
    while (head != nullptr) {
      Block* b = head;
      head = b->next;
      std::free(b);
    }
  }
  c.bytes = 0;
}

std::size_t cachedBytes() noexcept {
  return t_cache.bytes;
}

}  // namespace sluice::thread_cache
