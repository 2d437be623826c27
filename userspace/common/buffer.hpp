// A byte buffer with a read window for one connection: heads are parsed in place and bodies
// stream through it. Its storage is a block lent by the worker's BufferPool while the connection
// has bytes to handle, and given back when it has none (a connection idle between requests holds
// no buffer at all); a head larger than a block grows it with storage of its own, freed on
// release.
//
// Pools and buffers belong to one worker thread: nothing here is thread-safe.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>

namespace sluice {

// Blocks of one size, recycled: taking and giving back allocates nothing once the pool has as
// many free blocks as the worker's busiest moment needed (at most `max_free` are kept).
class BufferPool {
public:
  BufferPool(std::size_t block_bytes, std::size_t max_free)
      : block_bytes_(block_bytes), max_free_(max_free) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  std::size_t blockBytes() const { return block_bytes_; }
  std::unique_ptr<char[]> take() {
    ++lent_;
    if (free_.empty()) {
      return std::make_unique_for_overwrite<char[]>(block_bytes_);
    }
    auto block = std::move(free_.back());
    free_.pop_back();
    return block;
  }
  void give(std::unique_ptr<char[]> block) {
    --lent_;
    if (free_.size() < max_free_) {
      free_.push_back(std::move(block));
    }
  }
  std::size_t lent() const { return lent_; }
  std::size_t free() const { return free_.size(); }

private:
  std::size_t block_bytes_;
  std::size_t max_free_;
  std::size_t lent_ = 0;
  std::vector<std::unique_ptr<char[]>> free_;
};

class Buffer {
public:
  // Without storage; acquire() takes a block from a pool.
  Buffer() = default;
  // With storage of its own (no pool), for connections that keep their buffer for life.
  explicit Buffer(std::size_t capacity)
      : data_(std::make_unique_for_overwrite<char[]>(capacity)), cap_(capacity) {}
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // Storage from `pool`, if this buffer has none.
  void acquire(BufferPool& pool) {
    if (!data_) {
      data_ = pool.take();
      cap_ = pool.blockBytes();
      pool_ = &pool;
    }
  }
  // Gives the storage back (its pool's block) or frees it (grown). Precondition: empty().
  void release() {
    if (pool_ != nullptr && cap_ == pool_->blockBytes()) {
      pool_->give(std::move(data_));
    }
    data_.reset();
    pool_ = nullptr;
    cap_ = 0;
    begin_ = end_ = 0;
  }
  // release() if nothing is buffered: what a connection does when it goes idle.
  void releaseIfEmpty() {
    if (empty()) {
      release();
    }
  }
  bool hasStorage() const { return data_ != nullptr; }

  std::string_view readable() const { return {data_.get() + begin_, end_ - begin_}; }
  std::size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  bool full() const { return begin_ == 0 && end_ == cap_; }
  std::size_t capacity() const { return cap_; }

  void consume(std::size_t n) {
    begin_ += n;
    if (begin_ >= end_) {
      begin_ = end_ = 0;
    }
  }
  // Free space after the data, compacting first when the tail is exhausted. Compaction moves
  // bytes, so views into readable() are invalid after prepare(). Precondition: hasStorage().
  boost::asio::mutable_buffer prepare() {
    if (end_ == cap_ && begin_ > 0) {
      std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    return {data_.get() + end_, cap_ - end_};
  }
  void commit(std::size_t n) { end_ += n; }
  // Reallocates to `capacity` (never shrinks), keeping the readable bytes. Used when a head is
  // larger than the common case: blocks are small so busy connections stay cheap.
  void grow(std::size_t capacity) {
    if (capacity <= cap_) {
      return;
    }
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    std::memcpy(bigger.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    if (pool_ != nullptr && cap_ == pool_->blockBytes()) {
      pool_->give(std::move(data_));
    }
    data_ = std::move(bigger);
    cap_ = capacity;
  }
  void clear() { begin_ = end_ = 0; }

private:
  std::unique_ptr<char[]> data_;
  BufferPool* pool_ = nullptr;  // where data_ came from, if it did
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace sluice
