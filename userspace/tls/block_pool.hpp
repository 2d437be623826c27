// OpenSSL's buffers that come and go with every request and every handshake, kept out of the heap.
//
// Under SSL_MODE_RELEASE_BUFFERS a connection takes its read and write record buffers (16.3 and
// 16.2 KiB) for each read and write and gives them back when they are empty, and a handshake also
// holds a message buffer (21.3 KiB) and the write buffering (two of 4 KiB) until it ends. From
// glibc's heap those large blocks are carved up by the small, long-lived objects the next
// connections allocate in between (an SSL object is about 130 allocations), so a burst of
// handshakes leaves holes that neither the next large block nor the kernel can take: 0.65 MB of
// free heap after 1,000 handshakes, measured with malloc_stats() (docs/benchmarks-tls.md).
//
// Here they come from a region of their own instead: fixed slots of page-aligned memory, reused
// most-recently-freed first. A thread keeps a few freed slots for the next buffer (a request
// needs one or two at a time); a slot freed beyond those gives its pages back to the kernel at
// once. Only the pages a buffer was written to are resident: a 200-byte request touches one of a
// read buffer's five pages.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace sluice::tls {

class BlockPool {
public:
  static constexpr std::size_t kPage = 4096;
  // A slot holds the largest size served: a handshake's message buffer (OpenSSL 3.0 asks for
  // 21,848 bytes; 6 pages).
  static constexpr std::size_t kSlotBytes = 6 * kPage;
  // Freed slots a thread keeps resident for its next buffers. A keep-alive request holds one or
  // two at a time and a handshake five; more than this go back to the kernel.
  static constexpr std::size_t kKeepPerThread = 8;
  // While the thread has handshakes under way, and for a second after, it keeps up to this many:
  // each handshake takes and gives back about five slots, and giving back means madvise(2),
  // whose TLB flush, with the faults that bring the pages back, was 10 % of the agent's CPU
  // under a stream of full handshakes (perf, 64 at a time). Giving the excess back as soon as
  // none was under way still left half of that: in a stream of connections the count touches
  // zero all the time. trimAfterHandshakes() gives it back once they have stopped.
  static constexpr std::size_t kKeepDuringHandshakes = 256;

  // A thread's freed slots, most recent last, and its handshakes under way. Plain data, so that
  // a thread-local one outlives every destructor that may still free a buffer at the thread's
  // exit.
  struct Front {
    std::array<void*, kKeepDuringHandshakes> slots{};
    std::size_t count = 0;
    std::size_t handshakes = 0;
    bool recent = false;  // a handshake began or ended since the last trimAfterHandshakes()
  };

  struct Stats {
    std::size_t reserved_slots = 0;  // the region's size, in slots
    std::size_t mapped_slots = 0;    // made writable so far (the high-water mark of slots in use)
    std::size_t released_slots = 0;  // in the shared list, their pages given back
    std::uint64_t releases = 0;      // slots whose pages were given back, ever
    std::uint64_t overflows = 0;     // served sizes that found the region full (went to malloc)
  };

  // Whether OpenSSL's allocation of `n` bytes is one served here: the record buffers, the
  // handshake's message buffer and the write buffering's halves.
  static bool serves(std::size_t n) { return n == kPage || (n > 16 * 1024 && n <= kSlotBytes); }

  // Reserves `region_bytes` of address space (no memory until a slot is used). ok() is false if
  // the kernel refused; then nothing is served.
  explicit BlockPool(std::size_t region_bytes);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  bool ok() const { return base_ != nullptr; }
  bool owns(const void* p) const {
    const auto* b = static_cast<const std::byte*>(p);
    return b >= base_ && b < base_ + slots_ * kSlotBytes;
  }

  // A slot (kSlotBytes, page-aligned), or nullptr when the region is full. `front`: the calling
  // thread's kept slots, or nullptr for none (a thread past its exit).
  void* allocate(Front* front);
  // `p` must be owned. Kept in `front` if there is one with room (kKeepPerThread, or
  // kKeepDuringHandshakes while it has handshakes under way), else its pages go back to the
  // kernel.
  void deallocate(Front* front, void* p);
  // Gives back what `front` keeps beyond `keep` slots.
  void trim(Front& front, std::size_t keep);
  // Gives back every slot `front` keeps (a thread's exit).
  void drain(Front& front);

  Stats stats() const;

private:
  void release(void* p);

  std::byte* base_ = nullptr;
  std::size_t slots_ = 0;
  mutable std::mutex mutex_;  // guards the rest; taken only when a thread's front is empty or full
  std::size_t mapped_ = 0;
  std::vector<std::uint32_t> released_;  // slot numbers, most recent last
  std::uint64_t releases_ = 0;
  std::uint64_t overflows_ = 0;
};

// Routes OpenSSL's allocations through the process's BlockPool (the sizes BlockPool::serves())
// and glibc (the rest). Must run before OpenSSL allocates anything: first thing in main(). False
// if it could not (openSslAllocatorProblem() says why); OpenSSL then uses malloc for everything,
// as it does by default.
bool installOpenSslAllocator();
// A handshake on the calling thread begins or ends: while any is under way the thread keeps more
// freed buffers (BlockPool::kKeepDuringHandshakes). Nothing when the pool is not installed.
void handshakeBegins();
void handshakeEnds();
// Called on each worker's thread once a second (app/memory_release.cpp): if the thread has had
// no handshake under way since the last call, what it keeps beyond kKeepPerThread goes back.
void trimAfterHandshakes();
// Why OpenSSL's buffers are not in the pool, or nullptr if they are.
const char* openSslAllocatorProblem();
// The process's pool, or nullptr if installOpenSslAllocator() did not succeed.
const BlockPool* openSslBlockPool();

}  // namespace sluice::tls
