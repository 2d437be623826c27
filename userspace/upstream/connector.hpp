// Getting a connection to an endpoint of a cluster, for an HTTP request or a TCP route: an idle
// pooled connection when allowed, else a new one within the connect timeout. A failed connect
// ejects the endpoint (lb back-off) and is tried once more on another endpoint. The outcome is a
// value: connected, refused or timed out; nothing is thrown and nothing is logged at info.
//
// One Connector per worker, used on that worker's thread only.
#pragma once

#include <chrono>
#include <cstdint>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "lb/balancer.hpp"
#include "upstream/pool.hpp"
#include "upstream/stats.hpp"

namespace sluice::upstream {

enum class ConnectStatus : std::uint8_t {
  kConnected,
  kRefused,   // refused, reset, unreachable, or no endpoint to try
  kTimedOut,  // the last attempt did not connect within the timeout
  kOverflow,  // the cluster's pending-requests breaker is open: nothing was tried
};

struct ConnectResult {
  ConnectStatus status = ConnectStatus::kRefused;
  ConnectionPtr connection;               // when connected
  lb::EndpointState* endpoint = nullptr;  // when connected
  bool reused = false;                    // taken from the pool
};

struct ConnectOptions {
  std::uint32_t exclude = lb::kNoEndpoint;  // an endpoint the caller moves away from
  bool pooled = true;  // an idle pooled connection may serve (false: a new one, always)
  // Requests of the cluster (agent-wide) that may wait for a new connection at once; 0 = any.
  std::uint32_t max_pending = 0;
};

class Connector {
public:
  Connector(boost::asio::any_io_executor executor, Pool& pool, lb::Rng& rng,
            std::chrono::milliseconds timeout);

  boost::asio::awaitable<ConnectResult> connect(lb::Balancer& balancer, ClusterStats& stats,
                                                ConnectOptions options = {});

private:
  // One TCP connect to `ep` within the timeout.
  boost::asio::awaitable<ConnectStatus> open(Connection& conn, const lb::EndpointState& ep);

  boost::asio::any_io_executor executor_;
  Pool& pool_;
  lb::Rng& rng_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace sluice::upstream
