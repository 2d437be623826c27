// Per-worker keep-alive pool of upstream connections, keyed by endpoint id. Owned and used by one
// worker thread only, so it needs no locks; endpoint ids are never reused (lb::Registry), so a
// pooled connection can never be handed to a different endpoint after a config change.
//
// An idle connection is watched: a byte or an EOF from the upstream while it sits in the pool
// closes it at once, so stray bytes from a buggy backend (a body after a 204, a late error page)
// can never be read as the next client's response, and a connection the upstream closed is never
// handed out. An idle connection holds no read buffer.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "common/buffer.hpp"
#include "common/stats.hpp"

namespace sluice::upstream {

using Clock = std::chrono::steady_clock;

struct Connection {
  Connection(const boost::asio::any_io_executor& ex, std::uint32_t id)
      : socket(ex), endpoint_id(id) {}
  boost::asio::ip::tcp::socket socket;
  Buffer buffer;  // storage from the worker's BufferPool while a response is read
  std::uint32_t endpoint_id;
  Clock::time_point idle_since{};
  std::uint64_t requests = 0;  // served on this connection, for reuse statistics
  // Which pooling of this connection a watch belongs to: a watch that completes after the
  // connection was taken out again must leave it alone.
  std::uint64_t idle_epoch = 0;
  std::size_t pool_index = 0;  // position in its endpoint's idle list while pooled
};
using ConnectionPtr = std::shared_ptr<Connection>;

struct PoolStats {
  Counter closed_idle{0};  // idle connections closed because the upstream sent a byte or EOF
};

class Pool {
public:
  explicit Pool(std::size_t max_idle_per_endpoint) : max_idle_(max_idle_per_endpoint) {}
  ~Pool() { clear(); }

  // An idle connection to `endpoint_id`, most recently used first (warm and least likely to
  // have been closed by the upstream), or nullptr. Its watch is still pending and holds a
  // reference to it until the socket is readable or closed: whoever drops it closes it.
  ConnectionPtr acquire(std::uint32_t endpoint_id);
  // Keeps `conn` for reuse if there is room, watching it; otherwise closes it. Its buffer must
  // be empty (a connection with unread bytes is not reusable).
  void release(ConnectionPtr conn, Clock::time_point now);
  // Closes connections idle longer than `idle_timeout`; returns how many.
  std::size_t sweep(Clock::time_point now, Clock::duration idle_timeout);
  void clear();
  std::size_t idleCount() const;
  static PoolStats& stats();

private:
  void watch(const ConnectionPtr& conn);
  // Takes `conn` out of its endpoint's idle list (swap with the last: order within the list is
  // only a preference, and this keeps removal O(1)).
  void unlink(Connection& conn);

  std::size_t max_idle_;
  std::unordered_map<std::uint32_t, std::vector<ConnectionPtr>> idle_;
};

}  // namespace sluice::upstream
