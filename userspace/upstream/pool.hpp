// Per-worker keep-alive pool of upstream connections, keyed by endpoint id. Owned and used by one
// worker thread only, so it needs no locks; endpoint ids are never reused (lb::Registry), so a
// pooled connection can never be handed to a different endpoint after a config change.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "common/buffer.hpp"

namespace sluice::upstream {

using Clock = std::chrono::steady_clock;

struct Connection {
  Connection(const boost::asio::any_io_executor& ex, std::size_t buffer_bytes, std::uint32_t id)
      : socket(ex), buffer(buffer_bytes), endpoint_id(id) {}
  boost::asio::ip::tcp::socket socket;
  Buffer buffer;
  std::uint32_t endpoint_id;
  Clock::time_point idle_since{};
  std::uint64_t requests = 0;       // served on this connection, for reuse statistics
  bool probe_before_reuse = false;  // last response had no body by rule: check for stray bytes
};
using ConnectionPtr = std::unique_ptr<Connection>;

class Pool {
public:
  explicit Pool(std::size_t max_idle_per_endpoint) : max_idle_(max_idle_per_endpoint) {}

  // An idle connection to `endpoint_id`, most recently used first (warm and least likely to
  // have been closed by the upstream), or nullptr. A connection idle for more than a moment is
  // probed with a non-blocking peek first: the upstream may have closed it meanwhile.
  ConnectionPtr acquire(std::uint32_t endpoint_id, Clock::time_point now);
  // Keeps `conn` for reuse if there is room; otherwise closes it.
  void release(ConnectionPtr conn, Clock::time_point now);
  // Closes connections idle longer than `idle_timeout`; returns how many.
  std::size_t sweep(Clock::time_point now, Clock::duration idle_timeout);
  void clear();
  std::size_t idleCount() const;

private:
  std::size_t max_idle_;
  std::unordered_map<std::uint32_t, std::vector<ConnectionPtr>> idle_;
};

}  // namespace sluice::upstream
