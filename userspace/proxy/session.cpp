#include "proxy/session.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <array>
#include <charconv>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/log.hpp"
#include "lb/balancer.hpp"
#include "proxy/access_log.hpp"
#include "proxy/local_reply.hpp"
#include "proxy/worker.hpp"
#include "router/route_table.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr std::size_t kLingerBytes = 64 * 1024 * 1024;

namespace {

std::int64_t nowNs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void setNoDelay(tcp::socket& s) {
  error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
}

bool isHeader(std::string_view name, std::string_view want) { return http::iequals(name, want); }

// Minimal JSON string escaping for access-log fields that come from the client.
void appendJson(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

}  // namespace

Session::Session(Worker& worker, tcp::socket socket)
    : worker_(worker),
      client_(std::move(socket)),
      timer_(client_.get_executor()),
      id_(worker.nextConnectionId()),
      in_(std::min(worker.config().io_buffer_bytes, worker.config().limits.max_head_bytes)) {
  out_.reserve(2048);
  path_buf_.reserve(128);
  host_buf_.reserve(64);
  error_code ec;
  auto remote = client_.remote_endpoint(ec);
  if (!ec) {
    auto addr = remote.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
      addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
    }
    client_ip_ = addr.to_string();
  }
  setNoDelay(client_);
  worker_.attach(this);
  auto& g = globalStats();
  g.active_connections.fetch_add(1, std::memory_order_relaxed);
  bump(g.connections_total);
}

Session::~Session() {
  worker_.detach(this);
  globalStats().active_connections.fetch_sub(1, std::memory_order_relaxed);
}

void Session::start(Worker& worker, tcp::socket socket) {
  auto session = std::make_shared<Session>(worker, std::move(socket));
  auto ex = worker.io().get_executor();
  asio::co_spawn(ex, [session]() { return session->watchdog(); }, asio::detached);
  asio::co_spawn(ex, [session]() { return session->run(); }, asio::detached);
}

void Session::closeIfIdle() {
  close_after_ = true;
  if (phase_ == Phase::kIdle) {
    error_code ignored;
    client_.cancel(ignored);
  }
}

void Session::setDeadline(std::chrono::milliseconds d) {
  deadline_ = Clock::now() + d;
  if (deadline_ < armed_) {
    timer_.cancel();  // the watchdog wakes and re-arms for the earlier deadline
  }
}

asio::awaitable<void> Session::watchdog() {
  auto self = shared_from_this();
  while (!closed_) {
    armed_ = deadline_;
    timer_.expires_at(armed_);
    co_await timer_.async_wait(kNoThrow);
    if (closed_) {
      break;
    }
    if (Clock::now() >= deadline_) {
      timed_out_ = true;
      deadline_ = Clock::time_point::max();
      error_code ignored;
      client_.cancel(ignored);
      if (up_) {
        up_->socket.cancel(ignored);
      }
    }
  }
}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  const ProxyConfig& cfg = worker_.config();
  for (;;) {
    // Read one request head. Before its first byte the idle timeout applies; once bytes arrived,
    // the (shorter) header timeout, armed only if the head did not come in one read.
    phase_ = Phase::kIdle;
    if (in_.empty()) {
      if (close_after_ || worker_.draining()) {
        break;
      }
      setDeadline(cfg.idle_timeout);
    }
    // Nothing of the previous request may leak into this one (access log, retries, HEAD).
    host_ = {};
    path_ = {};
    endpoint_ = nullptr;
    head_request_ = false;
    timed_out_ = false;
    http::ParseResult pr;
    bool header_deadline_set = false;
    for (;;) {
      if (!in_.empty()) {
        pr = http::parseRequestHead(in_.readable(), req_, cfg.limits);
        if (pr.status != http::ParseStatus::kIncomplete) {
          break;
        }
        if (in_.full()) {
          if (in_.capacity() >= cfg.limits.max_head_bytes) {
            pr = {http::ParseStatus::kError, http::ParseError::kHeadTooLarge, 0};
            break;
          }
          in_.grow(cfg.limits.max_head_bytes);
        }
        phase_ = Phase::kHead;
        if (!header_deadline_set) {
          setDeadline(cfg.header_timeout);
          header_deadline_set = true;
        }
      }
      auto [ec, n] = co_await client_.async_read_some(in_.prepare(), kNoThrow);
      if (ec || n == 0) {
        if (timed_out_ && phase_ == Phase::kHead) {
          co_await sendLocal(LocalReply::k408, true, nullptr);
        }
        goto done;
      }
      in_.commit(n);
    }
    request_start_ = Clock::now();
    if (pr.status == http::ParseStatus::kError) {
      bump(globalStats().parse_errors[static_cast<std::size_t>(pr.error)]);
      const int status = http::statusFor(pr.error);
      const LocalReply reply = status == 414   ? LocalReply::k414
                               : status == 431 ? LocalReply::k431
                                               : LocalReply::k400;
      SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] rejected request: {}", id_,
                          http::errorName(pr.error));
      co_await sendLocal(reply, true, nullptr);
      break;
    }
    if (co_await handleRequest(pr.consumed) == Outcome::kClose) {
      break;
    }
  }
done:
  if (linger_) {
    // Lingering close after an error reply: the client may still be sending (a body we refused).
    // Closing with unread data would reset the connection and could destroy our reply before the
    // client reads it, so stop writing and discard input for a bounded time and volume.
    error_code ignored;
    client_.shutdown(tcp::socket::shutdown_send, ignored);
    setDeadline(kLingerTime);
    std::size_t discarded = 0;
    while (discarded < kLingerBytes) {
      in_.clear();
      auto [ec, n] = co_await client_.async_read_some(in_.prepare(), kNoThrow);
      if (ec || n == 0) {
        break;
      }
      discarded += n;
    }
  }
  closed_ = true;
  timer_.cancel();
  if (up_) {
    error_code ignored;
    up_->socket.close(ignored);
    up_.reset();
  }
  error_code ignored;
  client_.shutdown(tcp::socket::shutdown_send, ignored);
  client_.close(ignored);
}

asio::awaitable<Session::Outcome> Session::handleRequest(std::size_t head_len) {
  auto& g = globalStats();
  bump(g.requests_total);
  head_request_ = req_.method == "HEAD";
  // RFC 9110 §9.2.2: only these may be re-sent automatically after an ambiguous failure.
  idempotent_ = head_request_ || req_.method == "GET" || req_.method == "OPTIONS" ||
                req_.method == "PUT" || req_.method == "DELETE" || req_.method == "TRACE";
  // The head's views stay valid until the next read into in_ (consume() moves no bytes), and
  // everything after this point that reads from the client first copies what it needs.
  in_.consume(head_len);
  // A snapshot pinned for the whole request: a config swap mid-request changes nothing here.
  std::shared_ptr<const Snapshot> snap = worker_.snapshot();

  // Routing key: the absolute-form authority wins over Host (RFC 9112 §3.2.2).
  std::string_view raw_host = req_.authority.empty() ? req_.host : req_.authority;
  std::size_t host_len = 0;
  std::size_t path_len = 0;
  // resize() within the reserved capacity allocates nothing; normalizing never lengthens.
  host_buf_.resize(raw_host.size());
  path_buf_.resize(req_.path.size());
  if (!raw_host.empty() && !http::normalizeHost(raw_host, host_buf_.data(), host_len)) {
    co_return co_await sendLocal(LocalReply::k400, true, nullptr);
  }
  if (!http::normalizePath(req_.path, path_buf_.data(), path_len)) {
    co_return co_await sendLocal(LocalReply::k400, true, nullptr);
  }
  if (req_.body == http::BodyKind::kChunked && !in_.empty()) {
    // Body bytes that came with the head are checked before any upstream sees the head, so a
    // malformed chunked body in one packet never reaches a backend at all.
    http::ChunkedDecoder probe;
    if (auto r = probe.feed(in_.readable()); r.status == http::ParseStatus::kError) {
      bump(g.parse_errors[static_cast<std::size_t>(r.error)]);
      co_return co_await sendLocal(LocalReply::k400, true, nullptr);
    }
  }
  host_ = {host_buf_.data(), host_len};
  path_ = {path_buf_.data(), path_len};

  // A request whose body we will not read leaves unread bytes on the connection: close it.
  const bool has_body = req_.body != http::BodyKind::kNone;
  if (!snap || !snap->routes) {
    co_return co_await sendLocal(LocalReply::k503, has_body, nullptr);
  }
  const router::Match match = snap->routes->match(host_, path_);
  RouteStats* route = match.route < snap->route_stats.size()
                          ? snap->route_stats[match.route].get()
                          : nullptr;
  if (match.cluster == router::kNoCluster || match.cluster >= snap->balancers.size()) {
    co_return co_await sendLocal(LocalReply::k404, has_body, route);
  }
  const std::uint64_t limit = worker_.config().max_request_body;
  if (limit != 0 && req_.body == http::BodyKind::kContentLength && req_.content_length > limit) {
    co_return co_await sendLocal(LocalReply::k413, true, route);
  }
  if (snap->balancers[match.cluster]->endpoints().empty()) {
    co_return co_await sendLocal(LocalReply::k503, has_body, route);
  }
  g.active_requests.fetch_add(1, std::memory_order_relaxed);
  Outcome outcome = co_await forward(*snap, match.cluster, route);
  g.active_requests.fetch_sub(1, std::memory_order_relaxed);
  co_return outcome;
}

void Session::buildUpstreamHead(std::string_view path) {
  const std::string_view connection =
      http::findHeader(req_.headers, req_.header_count, "connection");
  std::string_view xff;
  out_.clear();
  out_.append(req_.method).append(" ").append(path);
  if (!req_.query.empty()) {
    out_.append("?").append(req_.query);
  }
  out_.append(" HTTP/1.1\r\n");
  if (!req_.authority.empty()) {
    out_.append("Host: ").append(req_.authority).append("\r\n");
  }
  for (std::size_t i = 0; i < req_.header_count; ++i) {
    const http::Header& h = req_.headers[i];
    // Framing is written from what we parsed, never copied: a Connection header naming
    // Content-Length (or Host) must not be able to strip it and desynchronise the upstream.
    if (isHeader(h.name, "content-length") || isHeader(h.name, "transfer-encoding")) {
      continue;
    }
    if (isHeader(h.name, "host")) {
      if (req_.authority.empty()) {
        out_.append(h.name).append(": ").append(h.value).append("\r\n");
      }
      continue;
    }
    if (http::isHopByHop(h.name, connection)) {
      continue;
    }
    if (isHeader(h.name, "x-forwarded-for")) {
      // Several X-Forwarded-For fields form one list (RFC 9110 §5.3).
      if (!xff.empty()) {
        xff_scratch_.assign(xff).append(", ").append(h.value);
        xff = xff_scratch_;
      } else {
        xff = h.value;
      }
      continue;
    }
    if (isHeader(h.name, "x-forwarded-proto") || isHeader(h.name, "x-forwarded-host") ||
        isHeader(h.name, "expect")) {
      continue;
    }
    out_.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  if (req_.host.empty() && req_.authority.empty()) {
    out_.append("Host: \r\n");  // HTTP/1.0 without Host: HTTP/1.1 upstreams require the field
  }
  if (req_.body == http::BodyKind::kChunked) {
    out_.append("Transfer-Encoding: chunked\r\n");
  } else if (req_.body == http::BodyKind::kContentLength) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, req_.content_length);
    out_.append("Content-Length: ").append(digits, end).append("\r\n");
  }
  if (req_.upgrade) {
    out_.append("Connection: upgrade\r\nUpgrade: ")
        .append(http::findHeader(req_.headers, req_.header_count, "upgrade"))
        .append("\r\n");
  }
  out_.append("X-Forwarded-For: ");
  if (!xff.empty()) {
    out_.append(xff).append(", ");
  }
  out_.append(client_ip_).append("\r\nX-Forwarded-Proto: http\r\n");
  const std::string_view fwd_host = req_.authority.empty() ? req_.host : req_.authority;
  if (!fwd_host.empty()) {
    out_.append("X-Forwarded-Host: ").append(fwd_host).append("\r\n");
  }
  out_.append("\r\n");
}

asio::awaitable<bool> Session::connectUpstream(const Snapshot& snap, std::uint32_t cluster,
                                               std::uint32_t exclude_id, bool fresh_only) {
  lb::Balancer& balancer = *snap.balancers[cluster];
  ClusterStats* stats = snap.cluster_stats[cluster].get();
  auto& g = globalStats();
  const ProxyConfig& cfg = worker_.config();
  // One retry on another endpoint after a failed connect; the failed one is ejected.
  bool last_timed_out = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto now = Clock::now();
    lb::EndpointState* ep = balancer.pick(nowNs(now), exclude_id, worker_.rng());
    if (ep == nullptr) {
      timed_out_ = last_timed_out;  // no other endpoint: report how the last attempt failed
      co_return false;
    }
    if (!fresh_only) {
      up_ = worker_.pool().acquire(ep->id(), now);
      if (up_) {
        endpoint_ = ep;
        upstream_reused_ = true;
        bump(g.upstream_reused);
        co_return true;
      }
    }
    up_ = std::make_unique<upstream::Connection>(client_.get_executor(), cfg.io_buffer_bytes,
                                                 ep->id());
    error_code ec;
    const auto addr = asio::ip::make_address(ep->address(), ec);
    if (ec) {
      up_.reset();
      co_return false;
    }
    phase_ = Phase::kConnect;
    setDeadline(cfg.upstream_connect_timeout);
    bump(g.upstream_connects);
    auto [cec] = co_await up_->socket.async_connect(tcp::endpoint(addr, ep->port()), kNoThrow);
    if (!cec) {
      setNoDelay(up_->socket);
      endpoint_ = ep;
      upstream_reused_ = false;
      co_return true;
    }
    const bool was_timeout = timed_out_;
    timed_out_ = false;
    SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] connect {} failed: {}", id_, ep->key(),
                        was_timeout ? "timeout" : cec.message());
    ep->recordFailure(nowNs(Clock::now()), lb::EjectionPolicy{});
    bump(stats->connect_failures);
    up_.reset();
    exclude_id = ep->id();
    if (attempt == 0) {
      bump(stats->retries);
    }
    last_timed_out = was_timeout;
  }
  timed_out_ = last_timed_out;  // tell the caller: timeout (504) or refusal (502)
  co_return false;
}

asio::awaitable<Session::Outcome> Session::forward(const Snapshot& snap, std::uint32_t cluster,
                                                   RouteStats* route) {
  const ProxyConfig& cfg = worker_.config();
  const bool client_keep_alive = req_.keep_alive && !worker_.draining();
  const bool client_http10 = req_.version_minor == 0;
  cluster_stats_ = snap.cluster_stats[cluster].get();

  // Everything the upstream needs from the head is copied into out_, so the client buffer can
  // be consumed and reused for the body.
  buildUpstreamHead(path_);
  const bool expect_continue = req_.expect_continue && req_.body != http::BodyKind::kNone;
  const bool request_upgrade = req_.upgrade;
  const http::BodyKind req_body = req_.body;
  body_left_ = req_.body == http::BodyKind::kContentLength ? req_.content_length : 0;
  chunked_.reset();

  std::uint32_t exclude = lb::kNoEndpoint;
  bool fresh_only = false;
  for (int attempt = 0;; ++attempt) {
    if (!co_await connectUpstream(snap, cluster, exclude, fresh_only)) {
      const bool timeout = timed_out_;
      timed_out_ = false;
      co_return co_await sendLocal(timeout ? LocalReply::k504 : LocalReply::k502,
                                   req_body != http::BodyKind::kNone, route);
    }
    // Send the head alone: if a pooled connection turns out dead we can still retry, since no
    // body byte has left the client buffer yet.
    phase_ = Phase::kUpstream;
    setDeadline(cfg.upstream_response_timeout);
    auto [wec, wn] = co_await asio::async_write(up_->socket, asio::buffer(out_), kNoThrow);
    if (!wec) {
      break;
    }
    const bool reused = upstream_reused_;
    releaseUpstream(false);
    if (timed_out_) {
      timed_out_ = false;
      co_return co_await sendLocal(LocalReply::k504, true, route);
    }
    if (!reused || attempt > 0) {
      bump(cluster_stats_->upstream_resets);
      co_return co_await sendLocal(LocalReply::k502, true, route);
    }
    fresh_only = true;  // a stale pooled connection: retry once on a new connection
  }

  endpoint_->beginRequest();
  struct EndGuard {
    lb::EndpointState* ep;
    ~EndGuard() { ep->endRequest(); }
  } end_guard{endpoint_};

  if (expect_continue && !client_http10) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [cec, cn] = co_await asio::async_write(client_, asio::buffer(kContinue), kNoThrow);
    if (cec) {
      releaseUpstream(false);
      co_return Outcome::kClose;
    }
  }
  const auto sent_at = Clock::now();
  if (req_body != http::BodyKind::kNone && !co_await streamRequestBody()) {
    // The client sent bad framing, went away or stalled, or the upstream refused the body. The
    // upstream connection is in an unknown state either way.
    const bool client_fault = phase_ == Phase::kBody;
    const bool timeout = timed_out_;
    timed_out_ = false;
    releaseUpstream(false);
    if (client_fault) {
      co_return co_await sendLocal(timeout ? LocalReply::k408 : LocalReply::k400, true, route);
    }
    co_return co_await sendLocal(timeout ? LocalReply::k504 : LocalReply::k502, true, route);
  }

  // Response head, relaying interim 1xx responses.
  phase_ = Phase::kUpstream;
  setDeadline(cfg.upstream_response_timeout);
  Buffer& ub = up_->buffer;
  http::ParseResult pr;
  bool any_response_byte = false;
  for (;;) {
    if (!ub.empty()) {
      // req_ views are stale once the body streamed; pass the method class we remembered.
      pr = http::parseResponseHead(ub.readable(), resp_, head_request_ ? "HEAD" : "GET",
                                   cfg.limits);
      if (pr.status == http::ParseStatus::kComplete && resp_.status >= 100 &&
          resp_.status < 200 && resp_.status != 101) {
        if (!client_http10) {
          auto [iec, in] = co_await asio::async_write(
              client_, asio::buffer(ub.readable().data(), pr.consumed), kNoThrow);
          if (iec) {
            releaseUpstream(false);
            co_return Outcome::kClose;
          }
        }
        ub.consume(pr.consumed);
        continue;
      }
      if (pr.status != http::ParseStatus::kIncomplete) {
        break;
      }
      if (ub.full()) {
        if (ub.capacity() >= cfg.limits.max_head_bytes) {
          pr = {http::ParseStatus::kError, http::ParseError::kHeadTooLarge, 0};
          break;
        }
        ub.grow(cfg.limits.max_head_bytes);
      }
    }
    auto [rec, rn] = co_await up_->socket.async_read_some(ub.prepare(), kNoThrow);
    if (rec || rn == 0) {
      const bool timeout = timed_out_;
      timed_out_ = false;
      const bool stale = upstream_reused_ && !any_response_byte && !timeout && idempotent_ &&
                         req_body == http::BodyKind::kNone && !request_upgrade;
      releaseUpstream(false);
      if (stale) {
        // The classic keep-alive race: the upstream closed the idle connection as we reused it.
        // Nothing of the request was consumed from the client, so re-run it on a new connection.
        // The endpoint did nothing wrong: no failure is recorded.
        bump(cluster_stats_->retries);
        if (!co_await connectUpstream(snap, cluster, lb::kNoEndpoint, true)) {
          const bool t = timed_out_;
          timed_out_ = false;
          co_return co_await sendLocal(t ? LocalReply::k504 : LocalReply::k502, false, route);
        }
        end_guard.ep->endRequest();
        end_guard.ep = endpoint_;
        endpoint_->beginRequest();
        auto [wec, wn] = co_await asio::async_write(up_->socket, asio::buffer(out_), kNoThrow);
        if (wec) {
          releaseUpstream(false);
          co_return co_await sendLocal(LocalReply::k502, false, route);
        }
        phase_ = Phase::kUpstream;
        setDeadline(cfg.upstream_response_timeout);
        any_response_byte = false;
        continue;
      }
      if (!timeout) {
        endpoint_->recordFailure(nowNs(Clock::now()), lb::EjectionPolicy{});
      }
      bump(cluster_stats_->upstream_resets);
      co_return co_await sendLocal(timeout ? LocalReply::k504 : LocalReply::k502, true, route);
    }
    any_response_byte = true;
    ub.commit(rn);
  }
  if (pr.status == http::ParseStatus::kError) {
    SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] bad upstream response from {}: {}", id_,
                        endpoint_->key(), http::errorName(pr.error));
    releaseUpstream(false);
    co_return co_await sendLocal(LocalReply::k502, true, route);
  }
  cluster_stats_->upstream_latency.observe(Clock::now() - sent_at);
  endpoint_->recordSuccess();

  if (resp_.status == 101) {
    if (!request_upgrade) {
      releaseUpstream(false);
      co_return co_await sendLocal(LocalReply::k502, true, route);
    }
    // Switching protocols: relay the head as received (it carries Connection/Upgrade), then the
    // connection is an opaque byte stream in both directions.
    auto [uec, un] = co_await asio::async_write(
        client_, asio::buffer(ub.readable().data(), pr.consumed), kNoThrow);
    ub.consume(pr.consumed);
    finishRequest(101, route);
    if (uec) {
      releaseUpstream(false);
      co_return Outcome::kClose;
    }
    bump(globalStats().upgrades);
    co_await tunnel();
    co_return Outcome::kClose;
  }

  // Final response: keep-alive towards the client needs a delimited body.
  bool close_client = !client_keep_alive || close_after_ ||
                      resp_.body == http::BodyKind::kUntilClose ||
                      (client_http10 && resp_.body == http::BodyKind::kChunked);
  const int status = resp_.status;
  const http::BodyKind resp_body = resp_.body;
  std::uint64_t resp_left = resp_.content_length;
  buildResponseHead(close_client);
  ub.consume(pr.consumed);

  phase_ = Phase::kResponse;
  bool upstream_ok = true;
  bool client_ok = true;
  if (resp_body == http::BodyKind::kNone) {
    auto [ec, n] = co_await asio::async_write(client_, asio::buffer(out_), kNoThrow);
    client_ok = !ec;
  } else {
    chunked_.reset();
    bool head_sent = false;
    for (;;) {
      // Forward what the upstream buffer holds of the body, the head riding along once.
      std::string_view avail = ub.readable();
      std::size_t take = avail.size();
      bool done = false;
      if (resp_body == http::BodyKind::kContentLength) {
        if (take >= resp_left) {
          take = static_cast<std::size_t>(resp_left);
          done = true;
        }
        resp_left -= take;
      } else if (resp_body == http::BodyKind::kChunked) {
        auto r = chunked_.feed(avail);
        take = r.consumed;
        if (r.status == http::ParseStatus::kError) {
          upstream_ok = false;
          break;
        }
        done = r.status == http::ParseStatus::kComplete;
      }
      if (take > 0 || !head_sent) {
        std::array<asio::const_buffer, 2> bufs{
            head_sent ? asio::const_buffer() : asio::buffer(out_),
            asio::buffer(avail.data(), take)};
        auto [ec, n] = co_await asio::async_write(client_, bufs, kNoThrow);
        head_sent = true;
        ub.consume(take);
        if (ec) {
          client_ok = false;
          break;
        }
      }
      if (done) {
        break;
      }
      setDeadline(cfg.upstream_response_timeout);
      if (resp_body == http::BodyKind::kContentLength && ub.empty() &&
          cfg.splice.body == SpliceStrategy::kPipe &&
          resp_.content_length > cfg.splice.body_threshold) {
        // The head is out; the rest of a large delimited body moves with splice(2). On failure
        // either side may be at fault: close both (the response is cut short either way).
        const std::uint64_t left = resp_left;
        resp_left = 0;
        upstream_ok = co_await spliceExactly(up_->socket, client_, left, cfg.splice.pipe_bytes,
                                             &Session::touchBody, this);
        client_ok = upstream_ok;
        break;
      }
      auto [rec, rn] = co_await up_->socket.async_read_some(ub.prepare(), kNoThrow);
      if (rec || rn == 0) {
        // EOF ends a close-delimited body; anywhere else the response was cut short.
        upstream_ok = resp_body == http::BodyKind::kUntilClose && rec == asio::error::eof;
        if (!upstream_ok) {
          timed_out_ = false;
          bump(cluster_stats_->upstream_resets);
        }
        break;
      }
      ub.commit(rn);
    }
  }
  // A 204/304 that announces a body anyway may still send it: never reuse that connection.
  // (resp_ views are intact here: a bodyless response read nothing after its head.)
  const bool bodyless_with_length =
      (status == 204 || status == 304) &&
      ((!http::findHeader(resp_.headers, resp_.header_count, "content-length").empty() &&
        http::findHeader(resp_.headers, resp_.header_count, "content-length") != "0") ||
       !http::findHeader(resp_.headers, resp_.header_count, "transfer-encoding").empty());
  if (up_) {
    // Bytes a misbehaving upstream sends after a response that has no body by rule (HEAD, 204,
    // 304) would be read as the next request's response: probe such a connection before reuse.
    up_->probe_before_reuse = resp_body == http::BodyKind::kNone;
  }
  const bool reusable = upstream_ok && client_ok && resp_.keep_alive && !bodyless_with_length &&
                        resp_body != http::BodyKind::kUntilClose && ub.empty();
  releaseUpstream(reusable);
  finishRequest(status, route);
  if (!upstream_ok || !client_ok || close_client) {
    co_return Outcome::kClose;
  }
  co_return Outcome::kKeepAlive;
}

asio::awaitable<bool> Session::streamRequestBody() {
  const ProxyConfig& cfg = worker_.config();
  const std::uint64_t limit = cfg.max_request_body;
  const bool chunked = req_.body == http::BodyKind::kChunked;
  for (;;) {
    std::string_view avail = in_.readable();
    std::size_t take = avail.size();
    bool done = false;
    if (!chunked) {
      if (take >= body_left_) {
        take = static_cast<std::size_t>(body_left_);
        done = true;
      }
      body_left_ -= take;
    } else {
      auto r = chunked_.feed(avail);
      if (r.status == http::ParseStatus::kError ||
          (limit != 0 && chunked_.payloadBytes() > limit)) {
        phase_ = Phase::kBody;
        co_return false;
      }
      take = r.consumed;
      done = r.status == http::ParseStatus::kComplete;
    }
    if (take > 0) {
      phase_ = Phase::kUpstream;
      setDeadline(cfg.upstream_response_timeout);
      auto [ec, n] =
          co_await asio::async_write(up_->socket, asio::buffer(avail.data(), take), kNoThrow);
      if (ec) {
        co_return false;
      }
      in_.consume(take);
    }
    if (done) {
      co_return true;
    }
    phase_ = Phase::kBody;
    setDeadline(cfg.body_timeout);
    if (!chunked && in_.empty() && cfg.splice.body == SpliceStrategy::kPipe &&
        req_.content_length > cfg.splice.body_threshold) {
      // A large delimited body: the rest moves socket to socket with splice(2), exactly
      // body_left_ bytes, and the client connection is back in the parser afterwards.
      const std::uint64_t left = body_left_;
      body_left_ = 0;
      co_return co_await spliceExactly(client_, up_->socket, left, cfg.splice.pipe_bytes,
                                       &Session::touchBody, this);
    }
    auto [ec, n] = co_await client_.async_read_some(in_.prepare(), kNoThrow);
    if (ec || n == 0) {
      co_return false;
    }
    in_.commit(n);
  }
}

asio::awaitable<void> Session::tunnel() {
  // The connection is now an opaque byte stream both ways, pinned to this backend for life: hand
  // it to the relay. Bytes that arrived behind the heads (in_, the upstream buffer) go first.
  phase_ = Phase::kTunnel;
  deadline_ = Clock::time_point::max();  // the relay enforces the tunnel idle timeout itself
  const ProxyConfig& cfg = worker_.config();
  Relay relay(client_, up_->socket, cfg.splice, cfg.tunnel_idle_timeout);
  co_await relay.run(cfg.splice.connection, in_, up_->buffer, id_);
  releaseUpstream(false);
}

void Session::touchBody(void* self) {
  auto* s = static_cast<Session*>(self);
  s->setDeadline(s->phase_ == Phase::kResponse ? s->worker_.config().upstream_response_timeout
                                               : s->worker_.config().body_timeout);
}

void Session::buildResponseHead(bool close) {
  const std::string_view connection =
      http::findHeader(resp_.headers, resp_.header_count, "connection");
  out_.clear();
  out_.append("HTTP/1.1 ");
  char status[4];
  std::to_chars(status, status + 3, resp_.status);
  out_.append(status, 3).append(" ").append(resp_.reason).append("\r\n");
  for (std::size_t i = 0; i < resp_.header_count; ++i) {
    const http::Header& h = resp_.headers[i];
    // Framing fields cannot be removed through Connection: the body we forward is delimited
    // exactly as the upstream announced it. Transfer-Encoding keeps its full coding list.
    if (isHeader(h.name, "transfer-encoding")) {
      out_.append(h.name).append(": ").append(h.value).append("\r\n");
      continue;
    }
    if (isHeader(h.name, "content-length")) {
      // Kept for a delimited body, and for HEAD/304 where it describes the entity.
      if (resp_.body == http::BodyKind::kContentLength || resp_.body == http::BodyKind::kNone) {
        out_.append(h.name).append(": ").append(h.value).append("\r\n");
      }
      continue;
    }
    if (http::isHopByHop(h.name, connection)) {
      continue;
    }
    out_.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  if (close) {
    out_.append("Connection: close\r\n");
  } else if (req_.version_minor == 0) {
    out_.append("Connection: keep-alive\r\n");
  }
  out_.append("\r\n");
}

void Session::releaseUpstream(bool reusable) {
  if (!up_) {
    return;
  }
  if (reusable && !worker_.draining()) {
    ++up_->requests;
    worker_.pool().release(std::move(up_), Clock::now());
  } else {
    error_code ignored;
    up_->socket.close(ignored);
    up_.reset();
  }
}

asio::awaitable<Session::Outcome> Session::sendLocal(LocalReply reply, bool close,
                                                     RouteStats* route) {
  globalStats().localReply(reply);
  const bool closing = close || close_after_ || worker_.draining() || !req_.keep_alive;
  std::string_view bytes = localReply(reply, closing);
  if (head_request_) {
    bytes = bytes.substr(0, bytes.find("\r\n\r\n") + 4);  // HEAD: same head, no body
  }
  setDeadline(worker_.config().header_timeout);
  phase_ = Phase::kResponse;
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(bytes), kNoThrow);
  linger_ = closing && !ec;
  finishRequest(statusOf(reply), route);
  co_return ec || closing ? Outcome::kClose : Outcome::kKeepAlive;
}

void Session::finishRequest(int status, RouteStats* route) {
  if (route != nullptr) {
    route->count(status);
  }
  if (accessLog() != nullptr) {
    writeAccessLog(status);
  }
}

void Session::writeAccessLog(int status) {
  std::string line;
  line.reserve(256);
  line += "{\"conn\":";
  line += std::to_string(id_);
  line += ",\"client\":";
  appendJson(line, client_ip_);
  line += ",\"host\":";
  appendJson(line, host_);
  line += ",\"path\":";
  appendJson(line, path_);
  line += ",\"status\":";
  line += std::to_string(status);
  line += ",\"upstream\":";
  appendJson(line, endpoint_ != nullptr ? std::string_view(endpoint_->key()) : "");
  line += ",\"duration_us\":";
  line += std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                             Clock::now() - request_start_)
                             .count());
  line += '}';
  accessLog()(line);
}

}  // namespace sluice::proxy
