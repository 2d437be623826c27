// One request's way upstream and its response's way back: connect (through the worker's
// upstream::Connector), send the head, pump the request body, read the response head (relaying
// interim 1xx), pump the response body, and decide whether the upstream connection is reused.
// Both bodies go through one pump, which follows the framing the parser accepted and moves large
// Content-Length bodies with splice(2).
//
// Failures are values: forward() never writes a local reply itself, it says which one the
// session should send (502 when the upstream refused or broke, 504 when it timed out, 503 when a
// cluster's circuit breaker is open, 400/408/413 when the client sent bad framing, stalled or
// sent too much). The session's Watchdog bounds every wait.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/buffer.hpp"
#include "http/parser.hpp"
#include "http/rewrite.hpp"
#include "lb/balancer.hpp"
#include "proxy/client_stream.hpp"
#include "proxy/stats.hpp"
#include "proxy/watchdog.hpp"
#include "upstream/connector.hpp"

namespace sluice::proxy {

class Worker;
struct RequestText;
struct Snapshot;

class Forwarder {
public:
  Forwarder(Worker& worker, ClientStream& client, Buffer& client_buffer, Watchdog& watchdog,
            std::uint64_t connection_id);
  // Closes an upstream connection still held (a session that ended mid-request): a pooled
  // connection's pending watch keeps it alive until its socket is closed or readable.
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  enum class Outcome : std::uint8_t {
    kKeepAlive,  // the response went out whole; the client may send another request
    kClose,      // the response went out (or was cut short); close the client connection
    kReply,      // nothing was sent to the client: send `reply` (closing if `close`)
    kUpgraded,   // a 101 went out: the connection is a tunnel now (call tunnel())
  };
  struct Result {
    Outcome outcome = Outcome::kClose;
    int status = 0;  // the response status sent (kKeepAlive, kClose, kUpgraded)
    LocalReply reply = LocalReply::k502;  // kReply
    bool close = true;                    // kReply: close after the reply
  };

  // Forwards the parsed request `req` (its head already consumed from the client buffer) to an
  // endpoint of `cluster`, with `text.path` as the request path; `text` holds the heads being
  // sent for the request's duration. `req` is read only before the first co_await (it is the
  // worker's scratch). `fwd`: what the session knows of the connection (its upgrade_protocols
  // is replaced by the cluster's). `client_keep_alive`: the client connection may carry another
  // request. `snap` must outlive the request and its tunnel.
  boost::asio::awaitable<Result> forward(const http::RequestHead& req, RequestText& text,
                                         const Snapshot& snap, std::uint32_t cluster,
                                         const http::Forwarding& fwd, bool client_keep_alive);
  // After kUpgraded: relays the tunnel until both sides are done.
  boost::asio::awaitable<void> tunnel();
  // Strict-Transport-Security for the responses of this request ("" = none); a view into the
  // pinned snapshot.
  void setHsts(std::string_view hsts) { hsts_ = hsts; }
  // The endpoint the last request went to, for the access log (null if none).
  const lb::EndpointState* endpoint() const { return endpoint_; }
  // Closes the upstream connection, if one is held.
  void close();

private:
  // What forward() keeps of the request head: its views go stale once the body streamed.
  struct Request {
    bool head = false;  // HEAD: the response has no body
    bool http10 = false;
    bool keep_alive = true;
    bool upgrade = false;  // an allowed upgrade went upstream (text_->upgrade lists it)
    bool expect_continue = false;
    bool idempotent = false;
    http::BodyKind body = http::BodyKind::kNone;
    std::uint64_t content_length = 0;
  };
  enum class Direction : std::uint8_t { kRequest, kResponse };
  enum class PumpEnd : std::uint8_t {
    kDone,
    kReadFailed,
    kWriteFailed,
    kBadFraming,
    kTooLarge,
    kSpliceFailed
  };
  struct Framing {
    http::BodyKind kind = http::BodyKind::kNone;
    std::uint64_t remaining = 0;  // kContentLength: bytes left to move
    std::uint64_t total = 0;      // kContentLength: the whole body (decides splice)
    // kChunked: what the decoder does (validate, drop request trailers, de-chunk) and the
    // payload limit (0 = none).
    http::ChunkedDecoder::Mode mode = http::ChunkedDecoder::Mode::kValidate;
    std::uint64_t max_payload = 0;
  };

  // Connects and sends the head; a pooled connection that turns out dead is replaced once.
  boost::asio::awaitable<Result> connectAndSend(const Snapshot& snap, std::uint32_t cluster,
                                                bool fresh_only);
  // Reads the response head into resp_, relaying 1xx; a reused connection the upstream had
  // closed is replaced once for a request that can be re-sent.
  boost::asio::awaitable<Result> readResponseHead(const Snapshot& snap, std::uint32_t cluster,
                                                  http::ParseResult& parsed);
  boost::asio::awaitable<Result> sendResponse(std::size_t head_len);
  boost::asio::awaitable<Result> streamRequestBody();
  // From → To: ClientStream → socket for the request, socket → ClientStream for the response.
  template <typename From, typename To>
  boost::asio::awaitable<PumpEnd> pump(From& from, Buffer& buf, To& to, Framing framing,
                                       std::string_view prefix, Direction dir);
  // A refusal (502) or a timeout (504), by what the watchdog saw.
  Result upstreamFailure(bool close);
  // The cluster's busy-connections breaker: taken once per request, before connecting.
  bool takeBusy(const Snapshot& snap, std::uint32_t cluster);
  // The 101 names only protocols the request asked for and the cluster allows.
  bool upgradeAnswered(const http::ResponseHead& resp) const;
  // Writes `prefix` then what the chunked decoder says to write for the bytes at the front of
  // `buf` (all of them in kValidate); sets `consumed` and `done`. kBadFraming or kTooLarge on a
  // decoder error.
  template <typename To>
  boost::asio::awaitable<PumpEnd> pumpChunked(Buffer& buf, To& to, const Framing& f,
                                              std::string_view& prefix, bool& done);
  boost::asio::awaitable<void> tlsTunnel();
  template <typename From, typename To>
  boost::asio::awaitable<void> copyTunnel(From& from, Buffer& buf, To& to,
                                          std::chrono::milliseconds idle);
  void take(upstream::ConnectResult connected);
  void release(bool reusable);
  static void touch(void* self, std::size_t sent);

  Worker& worker_;
  ClientStream& client_;
  Buffer& in_;
  Watchdog& watchdog_;
  const std::uint64_t id_;

  Request req_;
  http::ChunkedDecoder chunked_;
  // A chunked request body's kept trailers are rebuilt here (a pool block, only while one
  // streams).
  Buffer trailers_;
  std::string_view upgrade_protocols_;  // the cluster's (into the pinned snapshot)
  bool busy_held_ = false;              // a unit of cluster_stats_->busy is ours
  RequestText* text_ = nullptr;         // the request's heads, while forward() runs
  upstream::ConnectionPtr up_;
  lb::EndpointState* endpoint_ = nullptr;
  upstream::ClusterStats* cluster_stats_ = nullptr;
  Direction touching_ = Direction::kRequest;
  bool reused_ = false;
  std::string_view hsts_;
};

// A Forwarder's storage, lent by the worker for one request (Worker::takeForwarder) and given
// back with it: a connection waiting for its next request holds none (about 300 bytes).
struct ForwarderSlot {
  std::optional<Forwarder> forwarder;
};

}  // namespace sluice::proxy
