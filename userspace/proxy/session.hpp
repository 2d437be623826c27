// One downstream connection: a coroutine that reads requests, routes them on a pinned snapshot,
// forwards them over a pooled upstream connection and streams the response back, in order, until
// the connection closes. A watchdog coroutine enforces every timeout through one deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/buffer.hpp"
#include "http/parser.hpp"
#include "lb/balancer.hpp"
#include "proxy/handoff.hpp"
#include "proxy/stats.hpp"
#include "upstream/pool.hpp"

namespace sluice::proxy {

class Worker;
struct Snapshot;

class Session : public std::enable_shared_from_this<Session> {
public:
  Session(Worker& worker, boost::asio::ip::tcp::socket socket);
  ~Session();

  static void start(Worker& worker, boost::asio::ip::tcp::socket socket);
  // Drain: a session waiting for its next request is closed now; a busy one closes after its
  // current response.
  void closeIfIdle();

  Session* prev = nullptr;  // Worker's intrusive list
  Session* next = nullptr;

private:
  using Clock = std::chrono::steady_clock;
  enum class Phase : std::uint8_t { kIdle, kHead, kBody, kConnect, kUpstream, kResponse, kTunnel };
  // What happened to a request; decides whether the connection carries on.
  enum class Outcome : std::uint8_t { kKeepAlive, kClose };

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> watchdog();
  boost::asio::awaitable<Outcome> handleRequest(std::size_t head_len);
  boost::asio::awaitable<Outcome> forward(const Snapshot& snap, std::uint32_t cluster,
                                          RouteStats* route);
  boost::asio::awaitable<bool> connectUpstream(const Snapshot& snap, std::uint32_t cluster,
                                               std::uint32_t exclude_id, bool fresh_only);
  boost::asio::awaitable<Outcome> sendLocal(LocalReply reply, bool close, RouteStats* route);
  boost::asio::awaitable<bool> streamRequestBody();
  boost::asio::awaitable<void> tunnel();
  // splice(2) progress callback: re-arms the body (or response) inactivity deadline.
  static void touchBody(void* self);

  void buildUpstreamHead(std::string_view path);
  void buildResponseHead(bool close);
  void setDeadline(std::chrono::milliseconds d);
  void releaseUpstream(bool reusable);
  void finishRequest(int status, RouteStats* route);
  void writeAccessLog(int status);

  Worker& worker_;
  boost::asio::ip::tcp::socket client_;
  boost::asio::steady_timer timer_;
  const std::uint64_t id_;
  std::string client_ip_;
  Buffer in_;
  std::string out_;
  std::string xff_scratch_;
  std::string path_buf_;  // normalized routing path and host; capacity reused per request
  std::string host_buf_;
  std::string_view path_;
  std::string_view host_;
  http::RequestHead req_;
  http::ResponseHead resp_;
  http::ChunkedDecoder chunked_;
  upstream::ConnectionPtr up_;
  lb::EndpointState* endpoint_ = nullptr;
  ClusterStats* cluster_stats_ = nullptr;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_ = Clock::time_point::max();
  Clock::time_point request_start_{};
  Phase phase_ = Phase::kIdle;
  bool timed_out_ = false;
  bool closed_ = false;
  bool close_after_ = false;
  bool linger_ = false;
  bool head_request_ = false;
  bool idempotent_ = false;
  bool upstream_reused_ = false;
  std::uint64_t body_left_ = 0;
};

}  // namespace sluice::proxy
