#include "upstream/pool.hpp"

#include <boost/asio/bind_allocator.hpp>

#include "common/heap_allocator.hpp"
#include "common/ready_wait.hpp"

namespace sluice::upstream {

PoolStats& Pool::stats() {
  static PoolStats s;
  return s;
}

ConnectionPtr Pool::acquire(std::uint32_t endpoint_id) {
  auto it = idle_.find(endpoint_id);
  if (it == idle_.end() || it->second.empty()) {
    return nullptr;
  }
  ConnectionPtr conn = std::move(it->second.back());
  it->second.pop_back();
  // Its watch stays queued and, completing later (with the response, or at close), finds that it
  // belongs to no pooling any more: cancelling it now would be one more completion to run per
  // request, for nothing.
  ++conn->idle_epoch;
  return conn;
}

void Pool::release(ConnectionPtr conn, Clock::time_point now) {
  auto& list = idle_[conn->endpoint_id];
  if (list.size() >= max_idle_ || !conn->buffer.empty()) {
    boost::system::error_code ignored;
    conn->socket.close(ignored);
    return;
  }
  conn->buffer.release();
  conn->idle_since = now;
  conn->pool_index = list.size();
  watch(conn);
  list.push_back(std::move(conn));
}

void Pool::watch(const ConnectionPtr& conn) {
  const std::uint64_t epoch = ++conn->idle_epoch;
  // Queued without epoll_ctl(2) when the response's last read drained the socket (the common
  // case), with one poll(2) otherwise. The wait lives as long as the connection idles: a block of
  // its own size (HeapAllocator), not the first large enough one from Asio's cache.
  auto idle = [this, conn, epoch](boost::system::error_code ec) {
    if (ec || conn->idle_epoch != epoch) {
      return;  // taken out, or closed by the sweep
    }
    if (!net::readableNow(conn->socket.native_handle())) {
      // An edge left over from the response, which a read took before the reactor reported
      // it: the connection is fine. Watch again (the edge is spent: the wait looks, once).
      watch(conn);
      return;
    }
    // A byte or EOF while idle: whatever it is, it answers no request.
    bump(stats().closed_idle);
    unlink(*conn);
    boost::system::error_code ignored;
    conn->socket.close(ignored);
  };
  net::waitReadable(conn->socket,
                    boost::asio::bind_allocator(HeapAllocator<void>{}, std::move(idle)));
}

void Pool::unlink(Connection& conn) {
  auto it = idle_.find(conn.endpoint_id);
  if (it == idle_.end()) {
    return;
  }
  auto& list = it->second;
  const std::size_t i = conn.pool_index;
  if (i >= list.size() || list[i].get() != &conn) {
    return;
  }
  ++conn.idle_epoch;
  if (i + 1 != list.size()) {
    list[i] = std::move(list.back());
    list[i]->pool_index = i;
  }
  list.pop_back();
}

std::size_t Pool::sweep(Clock::time_point now, Clock::duration idle_timeout) {
  std::size_t closed = 0;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](ConnectionPtr& conn) {
      if (now - conn->idle_since < idle_timeout) {
        return false;
      }
      ++conn->idle_epoch;
      boost::system::error_code ignored;
      conn->socket.close(ignored);
      ++closed;
      return true;
    });
    for (std::size_t i = 0; i < list.size(); ++i) {
      list[i]->pool_index = i;
    }
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
  return closed;
}

void Pool::clear() {
  for (auto& [id, list] : idle_) {
    for (auto& conn : list) {
      ++conn->idle_epoch;
      boost::system::error_code ignored;
      conn->socket.close(ignored);
    }
  }
  idle_.clear();
}

std::size_t Pool::idleCount() const {
  std::size_t n = 0;
  for (const auto& [id, list] : idle_) {
    n += list.size();
  }
  return n;
}

}  // namespace sluice::upstream
