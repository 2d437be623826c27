#include "proxy/forwarder.hpp"

#include <algorithm>
#include <array>
#include <span>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/heap_allocator.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/ready_wait.hpp"
#include "http/rewrite.hpp"
#include "proxy/relay/pipe.hpp"
#include "proxy/relay/relay.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// For the wait of every request (the upstream's response): its operation from operator new (the
// agent's per-thread block cache), not Asio's cache of eight first-fit blocks, which mostly
// missed at 1,000 connections.
auto cachedNoThrow() {
  return asio::bind_allocator(HeapAllocator<void>{}, kNoThrow);
}
// A body write upstream that took longer than this means the upstream, not the client, set the
// pace in that --min-body-rate window.
constexpr auto kUpstreamHeldUp = std::chrono::milliseconds(100);
// Interim (1xx) responses relayed for one request; more is a backend flooding the client (and
// holding the request open without end): 502.
constexpr int kMaxInterimResponses = 8;

namespace {

// Keeps the endpoint's in-flight count for the time a request is on it.
struct InFlight {
  explicit InFlight(lb::EndpointState* e) : ep(e) { ep->beginRequest(); }
  ~InFlight() { ep->endRequest(); }
  void move(lb::EndpointState* e) {
    ep->endRequest();
    ep = e;
    ep->beginRequest();
  }
  lb::EndpointState* ep;
};

Forwarder::Result reply(LocalReply r, bool close) {
  return {Forwarder::Outcome::kReply, statusOf(r), r, close};
}

// The pump's two kinds of stream: the upstream's socket and the client's (maybe TLS) stream.
asio::awaitable<ClientStream::IoResult> readFrom(tcp::socket& s, asio::mutable_buffer b) {
  return s.async_read_some(b, kNoThrow);
}
asio::awaitable<ClientStream::IoResult> readFrom(ClientStream& s, asio::mutable_buffer b) {
  return s.readSome(b);
}
template <typename Buffers>
asio::awaitable<ClientStream::IoResult> writeTo(tcp::socket& s, const Buffers& b) {
  return asio::async_write(s, b, kNoThrow);
}
template <typename Buffers>
asio::awaitable<ClientStream::IoResult> writeTo(ClientStream& s, const Buffers& b) {
  return s.write(b);
}
bool spliceFrom(const tcp::socket&) {
  return true;
}
bool spliceFrom(const ClientStream& s) {
  return s.spliceRead();
}
bool spliceTo(const tcp::socket&) {
  return true;
}
bool spliceTo(const ClientStream& s) {
  return s.spliceWrite();
}
std::size_t sendNow(tcp::socket& s, std::span<const asio::const_buffer> b,
                    boost::system::error_code& ec) {
  return net::sendNow(s, b, ec);
}
std::size_t sendNow(ClientStream& s, std::span<const asio::const_buffer> b,
                    boost::system::error_code& ec) {
  return s.sendNow(b, ec);
}
// Drops the first `n` bytes of `bufs`.
template <std::size_t N>
void advance(std::array<asio::const_buffer, N>& bufs, std::size_t n) {
  for (asio::const_buffer& b : bufs) {
    const std::size_t k = std::min(n, b.size());
    b += k;
    n -= k;
  }
}
template <std::size_t N>
std::size_t totalSize(const std::array<asio::const_buffer, N>& bufs) {
  std::size_t total = 0;
  for (const asio::const_buffer& b : bufs) {
    total += b.size();
  }
  return total;
}
tcp::socket& socketOf(tcp::socket& s) {
  return s;
}
tcp::socket& socketOf(ClientStream& s) {
  return s.socket();
}

}  // namespace

Forwarder::Forwarder(Worker& worker, ClientStream& client, Buffer& client_buffer,
                     Watchdog& watchdog, std::uint64_t connection_id)
    : worker_(worker),
      client_(client),
      in_(client_buffer),
      watchdog_(watchdog),
      id_(connection_id) {}

Forwarder::Result Forwarder::upstreamFailure(bool close) {
  return reply(watchdog_.takeTimeout() ? LocalReply::k504 : LocalReply::k502, close);
}

void Forwarder::take(upstream::ConnectResult connected) {
  up_ = std::move(connected.connection);
  endpoint_ = connected.endpoint;
  reused_ = connected.reused;
  watchdog_.watch(Watchdog::kUpstream, &up_->socket);
}

bool Forwarder::takeBusy(const Snapshot& snap, std::uint32_t cluster) {
  const std::uint32_t limit =
      breakerLimits(snap.cluster_options[cluster], worker_.config()).connections;
  if (!cluster_stats_->busy.tryTake(limit)) {
    bump(cluster_stats_->overflow_connections);
    return false;
  }
  busy_held_ = true;
  return true;
}

Forwarder::~Forwarder() {
  if (up_) {
    // Lent per request, a Forwarder can end before the session's watchdog does.
    watchdog_.watch(Watchdog::kUpstream, nullptr);
    boost::system::error_code ignored;
    up_->socket.close(ignored);
  }
}

void Forwarder::release(bool reusable) {
  watchdog_.watch(Watchdog::kUpstream, nullptr);
  if (busy_held_) {
    busy_held_ = false;
    cluster_stats_->busy.give();
  }
  if (!up_) {
    return;
  }
  if (reusable && !worker_.draining()) {
    ++up_->requests;
    worker_.pool().release(std::move(up_), std::chrono::steady_clock::now());
  } else {
    boost::system::error_code ignored;
    up_->socket.close(ignored);
    up_.reset();
  }
}

void Forwarder::close() {
  release(false);
}

asio::awaitable<Forwarder::Result> Forwarder::forward(const http::RequestHead& req,
                                                      RequestText& text, const Snapshot& snap,
                                                      std::uint32_t cluster,
                                                      const http::Forwarding& fwd,
                                                      bool client_keep_alive) {
  const std::string& annotated = snap.cluster_options[cluster].upgrade_protocols;
  upgrade_protocols_ = annotated.empty() ? http::kDefaultUpgradeProtocols : annotated;
  req_ = Request{.head = req.method == "HEAD",
                 .http10 = req.version_minor == 0,
                 .keep_alive = client_keep_alive,
                 .upgrade = http::upgradeAllowed(req, upgrade_protocols_),
                 .expect_continue = req.expect_continue && req.body != http::BodyKind::kNone,
                 .idempotent = http::isIdempotent(req.method),
                 .body = req.body,
                 .content_length = req.content_length};
  endpoint_ = nullptr;
  cluster_stats_ = snap.cluster_stats[cluster].get();
  // Everything the upstream needs from the head is copied into the request's text, so the
  // client buffer can be consumed and reused for the body, or given back while the upstream
  // works when there is no body.
  text_ = &text;
  http::Forwarding route_fwd = fwd;
  route_fwd.upgrade_protocols = upgrade_protocols_;
  http::buildUpstreamHead(req, text.path, route_fwd, text.head, text.scratch);
  text.upgrade.clear();
  for (std::size_t i = 0; req_.upgrade && i < req.header_count; ++i) {
    if (http::iequals(req.headers[i].name, "upgrade")) {
      text.upgrade += text.upgrade.empty() ? "" : ", ";
      text.upgrade += req.headers[i].value;
    }
  }
  chunked_.reset();
  if (req_.body == http::BodyKind::kNone) {
    in_.releaseIfEmpty();
  }

  if (Result sent = co_await connectAndSend(snap, cluster, false);
      sent.outcome == Outcome::kReply) {
    co_return sent;
  }
  InFlight in_flight(endpoint_);
  if (req_.expect_continue && !req_.http10) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [ec, n] = co_await client_.write(asio::buffer(kContinue));
    if (ec) {
      release(false);
      co_return Result{Outcome::kClose};
    }
  }
  const auto sent_at = std::chrono::steady_clock::now();
  if (req_.body != http::BodyKind::kNone) {
    if (Result streamed = co_await streamRequestBody(); streamed.outcome == Outcome::kReply) {
      co_return streamed;
    }
  }
  http::ParseResult parsed;
  lb::EndpointState* before = endpoint_;
  Result head = co_await readResponseHead(snap, cluster, parsed);
  if (endpoint_ != before && endpoint_ != nullptr) {
    in_flight.move(endpoint_);  // the stale-connection retry moved to another endpoint
  }
  if (head.outcome != Outcome::kKeepAlive) {
    co_return head;
  }
  cluster_stats_->upstream_latency.observe(std::chrono::steady_clock::now() - sent_at);
  endpoint_->recordSuccess();
  co_return co_await sendResponse(parsed.consumed);
}

asio::awaitable<Forwarder::Result> Forwarder::connectAndSend(const Snapshot& snap,
                                                             std::uint32_t cluster,
                                                             bool fresh_only) {
  const ProxyConfig& cfg = worker_.config();
  const bool has_body = req_.body != http::BodyKind::kNone;
  const std::uint32_t max_pending = breakerLimits(snap.cluster_options[cluster], cfg).pending;
  for (int attempt = 0;; ++attempt) {
    // The breakers answer at once: no queue builds up behind a cluster that is at its limit.
    if (!takeBusy(snap, cluster)) {
      co_return reply(LocalReply::k503, has_body);
    }
    auto connected = co_await worker_.connector().connect(
        *snap.balancers[cluster], *cluster_stats_,
        {.pooled = !fresh_only && attempt == 0, .max_pending = max_pending});
    if (connected.status != upstream::ConnectStatus::kConnected) {
      release(false);
      LocalReply r = LocalReply::k502;
      if (connected.status == upstream::ConnectStatus::kTimedOut) {
        r = LocalReply::k504;
      } else if (connected.status == upstream::ConnectStatus::kOverflow) {
        r = LocalReply::k503;
      }
      co_return reply(r, has_body);
    }
    take(std::move(connected));
    // Send the head alone: if a pooled connection turns out dead we can still retry, since no
    // body byte has left the client buffer yet.
    watchdog_.arm(cfg.upstream_response_timeout);
    std::array<asio::const_buffer, 1> head{asio::buffer(text_->head)};
    boost::system::error_code ec;
    const std::size_t sent = net::sendNow(up_->socket, head, ec);
    if (sent < text_->head.size() && (!ec || ec == asio::error::would_block)) {
      advance(head, sent);
      std::tie(ec, std::ignore) = co_await asio::async_write(up_->socket, head, kNoThrow);
    }
    if (!ec) {
      co_return Result{Outcome::kKeepAlive};
    }
    const bool reused = reused_;
    release(false);
    if (watchdog_.takeTimeout()) {
      co_return reply(LocalReply::k504, true);
    }
    if (!reused || attempt > 0) {
      bump(cluster_stats_->upstream_resets);
      co_return reply(LocalReply::k502, true);
    }
    // A stale pooled connection: once more, on a new connection.
  }
}

asio::awaitable<Forwarder::Result> Forwarder::streamRequestBody() {
  touching_ = Direction::kRequest;
  const ProxyConfig& cfg = worker_.config();
  const Framing framing{.kind = req_.body,
                        .remaining = req_.content_length,
                        .total = req_.content_length,
                        .mode = http::ChunkedDecoder::Mode::kFilterTrailers,
                        .max_payload = cfg.max_request_body};
  if (req_.body == http::BodyKind::kChunked) {
    // Trailers that would mean something as header fields (framing, routing, credentials,
    // forwarding) never reach the upstream; the kept ones are rebuilt in a pool block.
    trailers_.acquire(worker_.buffers());
    const auto room = trailers_.prepare();
    const std::size_t bytes = std::min(room.size(), cfg.limits.max_head_bytes);
    chunked_.reset({.mode = framing.mode,
                    .max_payload = framing.max_payload,
                    .trailer_scratch = {static_cast<char*>(room.data()), bytes}});
  }
  watchdog_.startBodyRate(cfg.min_body_rate);
  const PumpEnd end = co_await pump(client_, in_, up_->socket, framing, {}, Direction::kRequest);
  watchdog_.stopBodyRate();
  trailers_.release();
  if (end == PumpEnd::kDone) {
    co_return Result{Outcome::kKeepAlive};
  }
  // The client sent bad framing or too much, went away or stalled, or the upstream refused the
  // body. The upstream connection is in an unknown state either way.
  release(false);
  if (end == PumpEnd::kWriteFailed) {
    co_return upstreamFailure(true);
  }
  if (end == PumpEnd::kTooLarge) {
    co_return reply(LocalReply::k413, true);
  }
  co_return reply(watchdog_.takeTimeout() ? LocalReply::k408 : LocalReply::k400, true);
}

asio::awaitable<Forwarder::Result> Forwarder::readResponseHead(const Snapshot& snap,
                                                               std::uint32_t cluster,
                                                               http::ParseResult& pr) {
  const ProxyConfig& cfg = worker_.config();
  watchdog_.arm(cfg.upstream_response_timeout);
  http::ResponseHead& resp = worker_.responseHead();  // scratch: used until the next co_await
  bool any_byte = false;
  int interim_count = 0;
  for (;;) {
    Buffer& ub = up_->buffer;
    if (!ub.empty()) {
      // The request's views are stale once the body streamed; pass the method class we kept.
      pr = http::parseResponseHead(ub.readable(), resp, req_.head ? "HEAD" : "GET", cfg.limits);
      const bool interim = pr.status == http::ParseStatus::kComplete && resp.status >= 100 &&
                           resp.status < 200 && resp.status != 101;
      if (interim && ++interim_count > kMaxInterimResponses) {
        SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] too many 1xx from {}", id_, endpoint_->key());
        bump(cluster_stats_->upstream_resets);
        release(false);
        co_return reply(LocalReply::k502, true);
      }
      if (interim) {
        if (!req_.http10) {
          auto [ec, n] = co_await client_.write(asio::buffer(ub.readable().data(), pr.consumed));
          if (ec) {
            release(false);
            co_return Result{Outcome::kClose};
          }
        }
        ub.consume(pr.consumed);
        continue;
      }
      if (pr.status == http::ParseStatus::kError) {
        SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] bad upstream response from {}: {}", id_,
                            endpoint_->key(), http::errorName(pr.error));
        release(false);
        co_return reply(LocalReply::k502, true);
      }
      if (pr.status == http::ParseStatus::kComplete) {
        co_return Result{Outcome::kKeepAlive};
      }
      if (ub.full()) {
        if (ub.capacity() >= cfg.limits.max_head_bytes) {
          release(false);
          co_return reply(LocalReply::k502, true);
        }
        ub.grow(cfg.limits.max_head_bytes);
      }
    }
    // (No co_await inside a condition: GCC 12 mis-compiles some of those.)
    bool readable = ub.hasStorage();
    boost::system::error_code ec = asio::error::operation_aborted;
    std::size_t n = 0;
    if (!readable) {
      // No buffer while the upstream works: at 1,000 requests in flight a 16 KiB buffer each
      // would be most of the agent's memory. Readable: read in this turn; nothing there after
      // all (a stale edge: net::waitReadable()), wait again without the buffer.
      auto [wait_ec] = co_await net::waitReadable(up_->socket, cachedNoThrow());
      readable = !wait_ec;
      if (readable) {
        up_->buffer.acquire(worker_.buffers());
        n = net::receiveNow(up_->socket, up_->buffer.prepare(), ec);
        if (ec == asio::error::would_block) {
          up_->buffer.release();
          continue;
        }
      }
    } else {
      ec = asio::error::would_block;
    }
    if (readable && ec == asio::error::would_block) {
      std::tie(ec, n) = co_await up_->socket.async_read_some(up_->buffer.prepare(), kNoThrow);
    }
    if (!ec && n > 0) {
      any_byte = true;
      up_->buffer.commit(n);
      continue;
    }
    const bool timeout = watchdog_.takeTimeout();
    const bool stale = reused_ && !any_byte && !timeout && req_.idempotent &&
                       req_.body == http::BodyKind::kNone && !req_.upgrade;
    release(false);
    if (!stale) {
      if (!timeout) {
        endpoint_->recordFailure(net::monotonicNs(), lb::EjectionPolicy{});
      }
      bump(cluster_stats_->upstream_resets);
      co_return reply(timeout ? LocalReply::k504 : LocalReply::k502, true);
    }
    // The classic keep-alive race: the upstream closed the idle connection as we reused it.
    // Nothing of the request was consumed from the client, so re-run it on a new connection.
    // The endpoint did nothing wrong: no failure is recorded.
    bump(cluster_stats_->retries);
    Result sent = co_await connectAndSend(snap, cluster, true);
    if (sent.outcome == Outcome::kReply) {
      sent.close = false;  // the request had no body: the client connection is in sync
      co_return sent;
    }
    watchdog_.arm(cfg.upstream_response_timeout);
    any_byte = false;
  }
}

asio::awaitable<Forwarder::Result> Forwarder::sendResponse(std::size_t head_len) {
  // The response head is the worker's scratch: everything taken from it happens before this
  // function's first co_await.
  const http::ResponseHead& resp = worker_.responseHead();
  Buffer& ub = up_->buffer;
  if (resp.status == 101) {
    if (!req_.upgrade || !upgradeAnswered(resp)) {
      // A switch nobody asked for, or to a protocol that was not asked for or is not allowed:
      // the bytes that follow are not HTTP the client expects.
      SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] unasked 101 from {}", id_, endpoint_->key());
      bump(cluster_stats_->upstream_resets);
      release(false);
      co_return reply(LocalReply::k502, true);
    }
    // Switching protocols: relay the head as received (it carries Connection/Upgrade); then the
    // connection is an opaque byte stream in both directions.
    auto [ec, n] = co_await client_.write(asio::buffer(ub.readable().data(), head_len));
    ub.consume(head_len);
    if (ec) {
      release(false);
      co_return Result{Outcome::kClose, 101};
    }
    bump(globalStats().upgrades);
    co_return Result{Outcome::kUpgraded, 101};
  }
  // Final response: keep-alive towards the client needs a delimited body.
  const bool close_client =
      http::mustCloseClient(req_.keep_alive, req_.http10, resp) || worker_.draining();
  const int status = resp.status;
  // An HTTP/1.0 client cannot read chunked framing: it gets the payload, delimited by the close.
  const bool dechunk = http::dechunkForClient(resp, req_.http10);
  http::buildResponseHead(
      resp, {.close = close_client, .http10 = req_.http10, .dechunk = dechunk, .hsts = hsts_},
      text_->head);
  // resp views are intact until the body is read: decide reuse now.
  const bool reusable_response = http::upstreamReusable(resp);
  const Framing framing{.kind = resp.body,
                        .remaining = resp.content_length,
                        .total = resp.content_length,
                        .mode = dechunk ? http::ChunkedDecoder::Mode::kDechunk
                                        : http::ChunkedDecoder::Mode::kValidate,
                        .max_payload = 0};
  ub.consume(head_len);
  touching_ = Direction::kResponse;
  chunked_.reset({.mode = framing.mode});
  const PumpEnd end =
      co_await pump(up_->socket, ub, client_, framing, text_->head, Direction::kResponse);
  const bool upstream_ok = end == PumpEnd::kDone || end == PumpEnd::kWriteFailed;
  const bool client_ok =
      end == PumpEnd::kDone || end == PumpEnd::kReadFailed || end == PumpEnd::kBadFraming;
  if (end == PumpEnd::kReadFailed) {
    watchdog_.takeTimeout();
    bump(cluster_stats_->upstream_resets);
  }
  release(upstream_ok && client_ok && reusable_response && up_->buffer.empty());
  const bool keep = upstream_ok && client_ok && !close_client;
  co_return Result{keep ? Outcome::kKeepAlive : Outcome::kClose, status};
}

bool Forwarder::upgradeAnswered(const http::ResponseHead& resp) const {
  bool any = false;
  for (std::size_t i = 0; i < resp.header_count; ++i) {
    if (!http::iequals(resp.headers[i].name, "upgrade")) {
      continue;
    }
    if (!http::upgradeListAccepted(text_->upgrade, upgrade_protocols_, resp.headers[i].value)) {
      return false;
    }
    any = true;
  }
  return any;
}

void Forwarder::touch(void* self, std::size_t sent) {
  auto* f = static_cast<Forwarder*>(self);
  const ProxyConfig& cfg = f->worker_.config();
  if (f->touching_ == Direction::kResponse) {
    f->watchdog_.arm(cfg.upstream_response_timeout);
  } else {
    f->watchdog_.countBody(sent);
    f->watchdog_.arm(cfg.body_timeout, Watchdog::kCapped);
  }
}

template <typename From, typename To>
asio::awaitable<Forwarder::PumpEnd> Forwarder::pump(From& from, Buffer& buf, To& to, Framing f,
                                                    std::string_view prefix, Direction dir) {
  const ProxyConfig& cfg = worker_.config();
  for (;;) {
    // Forward what the buffer holds of the body (after the prefix, the response head, once).
    const std::string_view avail = buf.readable();
    std::size_t take = avail.size();
    bool done = false;
    if (f.kind == http::BodyKind::kNone) {
      take = 0;
      done = true;
    } else if (f.kind == http::BodyKind::kContentLength) {
      take = static_cast<std::size_t>(std::min<std::uint64_t>(take, f.remaining));
      f.remaining -= take;
      done = f.remaining == 0;
    } else if (f.kind == http::BodyKind::kChunked) {
      if (dir == Direction::kRequest) {
        watchdog_.arm(cfg.upstream_response_timeout);  // the upstream's turn, not the client's
      }
      const auto write_start = std::chrono::steady_clock::now();
      const PumpEnd end = co_await pumpChunked(buf, to, f, prefix, done);
      if (end != PumpEnd::kDone) {
        co_return end;
      }
      if (dir == Direction::kRequest &&
          std::chrono::steady_clock::now() - write_start > kUpstreamHeldUp) {
        watchdog_.upstreamHeldUp();
      }
      take = 0;
      if (!done && !buf.empty()) {
        continue;  // the decoder's spans were full: more of the buffer to write first
      }
    }
    if (take > 0 || !prefix.empty()) {
      const auto write_start = std::chrono::steady_clock::now();
      if (dir == Direction::kRequest) {
        watchdog_.arm(cfg.upstream_response_timeout);  // the upstream's turn, not the client's
      }
      std::array<asio::const_buffer, 2> bufs{asio::buffer(prefix),
                                             asio::buffer(avail.data(), take)};
      boost::system::error_code ec;
      const std::size_t total = totalSize(bufs);
      if (const std::size_t sent = sendNow(to, bufs, ec);
          sent < total && (!ec || ec == asio::error::would_block)) {
        advance(bufs, sent);
        std::tie(ec, std::ignore) = co_await writeTo(to, bufs);
      }
      prefix = {};
      if (ec) {
        co_return PumpEnd::kWriteFailed;
      }
      buf.consume(take);
      if (dir == Direction::kRequest &&
          std::chrono::steady_clock::now() - write_start > kUpstreamHeldUp) {
        watchdog_.upstreamHeldUp();
      }
    }
    if (done) {
      co_return PumpEnd::kDone;
    }
    if (dir == Direction::kRequest) {
      watchdog_.arm(cfg.body_timeout, Watchdog::kCapped);
    } else {
      watchdog_.arm(cfg.upstream_response_timeout);
    }
    if (f.kind == http::BodyKind::kContentLength && buf.empty() &&
        cfg.splice.body == SpliceStrategy::kPipe && f.total > cfg.splice.body_threshold &&
        spliceFrom(from) && spliceTo(to)) {
      // A large delimited body: the rest moves socket to socket with splice(2), exactly its
      // length, and the connection is back in the parser afterwards (a TLS client only with
      // kTLS in that direction: the kernel then does the record layer).
      const bool moved = co_await spliceExactly(socketOf(from), socketOf(to), f.remaining,
                                                cfg.splice.pipe_bytes, &touch, this);
      co_return moved ? PumpEnd::kDone : PumpEnd::kSpliceFailed;
    }
    auto [ec, n] = co_await readFrom(from, buf.prepare());
    if (ec || n == 0) {
      // EOF ends a close-delimited body; anywhere else the body was cut short.
      const bool end_of_body = f.kind == http::BodyKind::kUntilClose && ec == asio::error::eof;
      co_return end_of_body ? PumpEnd::kDone : PumpEnd::kReadFailed;
    }
    if (dir == Direction::kRequest) {
      watchdog_.countBody(n);
    }
    buf.commit(n);
  }
}

template <typename To>
asio::awaitable<Forwarder::PumpEnd> Forwarder::pumpChunked(Buffer& buf, To& to, const Framing& f,
                                                           std::string_view& prefix, bool& done) {
  http::ChunkedDecoder::Spans spans;
  const std::string_view avail = buf.readable();
  const http::ChunkedDecoder::Result r = f.mode == http::ChunkedDecoder::Mode::kValidate
                                             ? chunked_.feed(avail)
                                             : chunked_.feed(avail, spans);
  if (r.status == http::ParseStatus::kError) {
    co_return r.error == http::ParseError::kBodyTooLarge ? PumpEnd::kTooLarge
                                                         : PumpEnd::kBadFraming;
  }
  if (f.mode == http::ChunkedDecoder::Mode::kValidate && r.consumed > 0) {
    spans.part[0] = avail.substr(0, r.consumed);
    spans.count = 1;
  }
  done = r.status == http::ParseStatus::kComplete;
  std::array<asio::const_buffer, http::ChunkedDecoder::Spans::kCapacity + 1> bufs{};
  bufs[0] = asio::buffer(prefix);
  for (std::size_t i = 0; i < spans.count; ++i) {
    bufs[i + 1] = asio::buffer(spans.part[i]);
  }
  if (spans.count > 0 || !prefix.empty()) {
    auto [ec, n] = co_await writeTo(to, bufs);
    prefix = {};
    if (ec) {
      co_return PumpEnd::kWriteFailed;
    }
  }
  buf.consume(r.consumed);
  co_return PumpEnd::kDone;
}

asio::awaitable<void> Forwarder::tunnel() {
  // The connection is now an opaque byte stream both ways, pinned to this backend for life: hand
  // it to the relay. Bytes that arrived behind the heads (the client buffer, the upstream
  // buffer) go first. The relay enforces the tunnel idle timeout itself.
  watchdog_.disarm();
  const ProxyConfig& cfg = worker_.config();
  in_.acquire(worker_.buffers());
  up_->buffer.acquire(worker_.buffers());
  if (client_.tls()) {
    co_await tlsTunnel();
  } else {
    Relay relay(client_.socket(), up_->socket, cfg.splice, worker_.datapath(),
                cfg.tunnel_idle_timeout);
    co_await relay.run(cfg.splice.connection, in_, up_->buffer, id_);
  }
  release(false);
}

asio::awaitable<void> Forwarder::tlsTunnel() {
  // A terminated connection's tunnel: the agent holds the TLS record layer, so the bytes go
  // through its buffers both ways (kernel relays need kTLS in both directions and a socket a
  // sockmap accepts, which a kTLS socket is not). The watchdog enforces the idle timeout.
  using namespace asio::experimental::awaitable_operators;
  const auto idle = worker_.config().tunnel_idle_timeout;
  watchdog_.arm(idle);
  auto toUpstream = [this, idle]() -> asio::awaitable<void> {
    co_await copyTunnel(client_, in_, up_->socket, idle);
    boost::system::error_code ignored;
    up_->socket.shutdown(tcp::socket::shutdown_send, ignored);
  };
  auto toClient = [this, idle]() -> asio::awaitable<void> {
    co_await copyTunnel(up_->socket, up_->buffer, client_, idle);
    client_.shutdownSend();
  };
  co_await (toUpstream() && toClient());
  watchdog_.disarm();
}

template <typename From, typename To>
asio::awaitable<void> Forwarder::copyTunnel(From& from, Buffer& buf, To& to,
                                            std::chrono::milliseconds idle) {
  for (;;) {
    if (!buf.empty()) {
      auto [ec, n] = co_await writeTo(to, asio::buffer(buf.readable()));
      if (ec) {
        co_return;
      }
      buf.clear();
    }
    auto [ec, n] = co_await readFrom(from, buf.prepare());
    if (ec || n == 0) {
      co_return;
    }
    buf.commit(n);
    watchdog_.arm(idle);
  }
}

}  // namespace sluice::proxy
