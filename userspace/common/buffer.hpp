// A fixed-capacity byte buffer with a read window, allocated once per connection and reused for
// every message on it: heads are parsed in place and bodies stream through it.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

#include <boost/asio/buffer.hpp>

namespace sluice {

class Buffer {
public:
  explicit Buffer(std::size_t capacity)
      : data_(std::make_unique_for_overwrite<char[]>(capacity)), cap_(capacity) {}

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
  // bytes, so views into readable() are invalid after prepare().
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
  // larger than the common case: buffers start small so idle connections stay cheap.
  void grow(std::size_t capacity) {
    if (capacity <= cap_) {
      return;
    }
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    std::memcpy(bigger.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    data_ = std::move(bigger);
    cap_ = capacity;
  }
  void clear() { begin_ = end_ = 0; }

private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace sluice
