#include "proxy/http_session.hpp"

#include <charconv>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/heap_allocator.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/thread_cache.hpp"
#include "proxy/access_log.hpp"
#include "proxy/local_reply.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/tcp_session.hpp"
#include "proxy/worker.hpp"
#include "router/route_table.hpp"
#include "tls/block_pool.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr std::size_t kLingerBytes = 64 * 1024 * 1024;

namespace {

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

// A trusted proxy in front says the client spoke HTTPS to it: no redirect (it would loop).
bool forwardedHttps(const http::RequestHead& req, bool trusted_peer) {
  return trusted_peer &&
         http::iequals(http::findHeader(req.headers, req.header_count, "x-forwarded-proto"),
                       "https");
}

LocalReply replyFor(http::ParseError e) {
  const int status = http::statusFor(e);
  return status == 414 ? LocalReply::k414 : status == 431 ? LocalReply::k431 : LocalReply::k400;
}

}  // namespace

HttpSession::HttpSession(Worker& worker, tcp::socket socket, ConnectionLimit::Slot slot, bool tls)
    : worker_(worker),
      client_(std::move(socket)),
      slot_(std::move(slot)),
      watchdog_(worker.io().get_executor()),
      id_(worker.nextConnectionId()),
      client_ip_(net::peerAddress(client_.socket())),
      tls_listener_(tls) {
  error_code ignored;
  client_.socket().set_option(tcp::no_delay(true), ignored);
  if (const tcp::endpoint local = client_.socket().local_endpoint(ignored); !ignored) {
    const auto [end, _] = std::to_chars(port_.data(), port_.data() + port_.size(), local.port());
    port_len_ = static_cast<std::uint8_t>(end - port_.data());
  }
  setTrust();
  watchdog_.watch(Watchdog::kClient, &client_.socket());
  worker_.attach(this);
  auto& g = globalStats();
  g.connectionOpened();
  bump(g.connections_total);
}

HttpSession::~HttpSession() {
  worker_.detach(this);
  globalStats().active_connections.fetch_sub(1, std::memory_order_relaxed);
}

void HttpSession::start(Worker& worker, tcp::socket socket, ConnectionLimit::Slot slot, bool tls) {
  auto session = std::make_shared<HttpSession>(worker, std::move(socket), std::move(slot), tls);
  auto ex = worker.io().get_executor();
  session->watchdog_.start(session);
  asio::co_spawn(
      ex, [session]() { return session->run(false); }, asio::detached);
}

void HttpSession::closeIfIdle() {
  close_after_ = true;
  if (idle_) {
    error_code ignored;
    client_.socket().cancel(ignored);
  }
}

void HttpSession::setTrust() {
  trusted_peer_ = worker_.config().trusted_proxies.containsText(client_ip_);
}

http::Forwarding HttpSession::forwarding() const {
  const ProxyConfig& cfg = worker_.config();
  return http::Forwarding{
      .client_ip = client_ip_,
      .proto = client_.tls() ? "https" : "http",
      .port = {port_.data(), port_len_},
      .trusted_peer = trusted_peer_,
      .trusted = {&net::CidrSet::matchText, &cfg.trusted_proxies},
  };
}

asio::awaitable<bool> HttpSession::readProxyHeader() {
  const ProxyConfig& cfg = worker_.config();
  if (!beginIdleWait()) {
    co_return false;
  }
  error_code ec;
  if (!client_.readableNow()) {
    std::tie(ec) = co_await client_.waitReadable(asio::as_tuple(asio::use_awaitable));
  }
  if (!endIdleWait(ec)) {
    co_return false;
  }
  watchdog_.arm(cfg.header_timeout, Watchdog::kCapped);
  auto& g = globalStats();
  for (;;) {
    const http::ProxyHeader h = http::parseProxyProtocol(in_.readable());
    if (h.status == http::ProxyStatus::kError && h.error == http::ProxyError::kNoSignature) {
      co_return true;  // plain HTTP: the header is optional
    }
    if (!trusted_peer_) {
      // Anyone could claim any address: only --trusted-proxies may speak for a client.
      bump(g.proxy_untrusted);
      co_return false;
    }
    if (h.status == http::ProxyStatus::kError) {
      bump(g.proxy_errors[static_cast<std::size_t>(h.error)]);
      SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] bad PROXY header from {}: {}", id_, client_ip_,
                          http::proxyErrorName(h.error));
      co_return false;
    }
    if (h.status == http::ProxyStatus::kComplete) {
      in_.consume(h.consumed);
      bump(g.proxy_headers);
      if (h.command == http::ProxyCommand::kProxy) {
        client_ip_ =
            h.source.v6
                ? net::addressText(asio::ip::address_v6(h.source.bytes))
                : net::addressText(asio::ip::address_v4({h.source.bytes[0], h.source.bytes[1],
                                                         h.source.bytes[2], h.source.bytes[3]}));
        setTrust();
      }
      co_return true;
    }
    if (in_.full()) {
      co_return false;  // cannot happen below the v2 limit; never spin on it
    }
    auto [ec, n] = co_await client_.readSome(in_.prepare());
    if (ec || n == 0) {
      watchdog_.takeTimeout();
      co_return false;
    }
    in_.commit(n);
  }
}

asio::awaitable<void> HttpSession::run(bool woken) {
  auto self = shared_from_this();
  bool open = true;
  if (!woken && worker_.config().proxy_protocol) {
    open = co_await readProxyHeader();
  }
  if (!woken && open && tls_listener_) {
    open = co_await startTls();
  }
  while (open) {
    if (!woken) {
      // Nothing of the previous request may leak into this one (access log, retries, HEAD).
      host_ = {};
      path_ = {};
      head_request_ = false;
      watchdog_.takeTimeout();
      in_.releaseIfEmpty();
      idle_ = !in_.hasStorage();
      if (idle_) {
        if (!beginIdleWait()) {
          break;
        }
        if (!client_.readableNow()) {
          park();
          co_return;  // an idle connection holds no coroutine frame at all
        }
        if (!endIdleWait({})) {
          break;
        }
      }
    }
    woken = false;
    const http::ParseResult pr = co_await readHead();
    if (pr.status == http::ParseStatus::kIncomplete) {
      if (std::exchange(stale_wake_, false)) {
        continue;  // nothing came after all: idle again
      }
      break;  // closed, or timed out (a 408 went out if a head had begun)
    }
    request_start_ = Clock::now();
    if (pr.status == http::ParseStatus::kError) {
      bump(globalStats().parse_errors[static_cast<std::size_t>(pr.error)]);
      SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] rejected request: {}", id_,
                          http::errorName(pr.error));
      co_await sendLocal(replyFor(pr.error), true, nullptr);
      break;
    }
    if (co_await handleRequest(pr.consumed) == Outcome::kClose) {
      break;
    }
  }
  if (linger_) {
    co_await linger();
  }
  close();
}

void HttpSession::park() {
  // Idle between requests the session is only this wait's handler (and the watchdog's timer):
  // no coroutine, no buffer. Readable: a new run() serves what came, from readHead() on.
  auto woken = [self = shared_from_this()](const error_code& ec) {
    if (!self->endIdleWait(ec)) {
      self->close();
      return;
    }
    asio::co_spawn(
        self->worker_.io().get_executor(), [self]() { return self->run(true); }, asio::detached);
  };
  // The wait gets a block of its own size, not one from Asio's per-thread cache (HeapAllocator).
  client_.waitReadable(asio::bind_allocator(
      HeapAllocator<void>{}, asio::bind_executor(worker_.io().get_executor(), std::move(woken))));
}

void HttpSession::close() {
  // No Forwarder is held here: handleRequest() gives it back, with its upstream connection
  // released, before run() can end or park.
  watchdog_.close();
  client_.shutdownSend();
  client_.close();
}

bool HttpSession::beginIdleWait() {
  // Idle between requests: no buffer, no parse state, just the socket. The buffer is taken
  // from the worker's pool once the client has sent something (or closed).
  if (close_after_ || worker_.draining()) {
    return false;
  }
  watchdog_.arm(worker_.config().idle_timeout);
  return true;
}

bool HttpSession::endIdleWait(error_code ec) {
  // A deadline that fired after the wait had completed but before this ran cancelled nothing:
  // the idle timeout has passed all the same.
  if (const bool timed_out = watchdog_.takeTimeout(); ec || timed_out) {
    return false;
  }
  in_.acquire(worker_.buffers());
  return true;
}

asio::awaitable<http::ParseResult> HttpSession::readHead() {
  const ProxyConfig& cfg = worker_.config();
  // Before its first byte the idle timeout applied (run()); once bytes arrived, the (shorter)
  // header timeout, armed only if the head did not come in one read.
  // The head's first byte is here (or already buffered, pipelined): the request's clock starts.
  watchdog_.startRequest(cfg.request_timeout);
  bool header_deadline_set = false;
  bool ready = idle_;  // the wait just said readable: read in this turn
  for (;;) {
    if (!in_.empty()) {
      http::ParseResult pr =
          http::parseRequestHead(in_.readable(), worker_.requestHead(), cfg.limits);
      if (pr.status != http::ParseStatus::kIncomplete) {
        idle_ = false;
        co_return pr;
      }
      if (in_.full()) {
        if (in_.capacity() >= cfg.limits.max_head_bytes) {
          co_return http::ParseResult{http::ParseStatus::kError, http::ParseError::kHeadTooLarge,
                                      0};
        }
        in_.grow(cfg.limits.max_head_bytes);
      }
      idle_ = false;
      if (!header_deadline_set) {
        watchdog_.arm(cfg.header_timeout, Watchdog::kCapped);
        header_deadline_set = true;
      }
    }
    error_code ec = asio::error::would_block;
    std::size_t n = 0;
    if (ready) {
      std::tie(ec, n) = client_.readNow(in_.prepare());
      ready = false;
      if (ec == asio::error::would_block && in_.empty() && !client_.readableNow()) {
        // A stale edge (net::waitReadable()): the connection is still idle. Back to park(),
        // which holds no buffer, rather than wait here with one. (Not while OpenSSL holds part
        // of a record: run() would not park, and readSome() below waits for the rest.)
        stale_wake_ = true;
        co_return http::ParseResult{};
      }
    }
    if (ec == asio::error::would_block) {
      std::tie(ec, n) = co_await client_.readSome(in_.prepare());
    }
    if (ec || n == 0) {
      if (watchdog_.takeTimeout() && !idle_) {
        co_await sendLocal(LocalReply::k408, true, nullptr);
      }
      co_return http::ParseResult{};
    }
    in_.commit(n);
  }
}

asio::awaitable<HttpSession::Outcome> HttpSession::handleRequest(std::size_t head_len) {
  auto& g = globalStats();
  bump(g.requests_total);
  // The head lives in the worker's scratch and its views in in_: both are used only until the
  // first co_await (other sessions of the worker parse into the scratch then); what the request
  // needs later is copied into text_ or into members first.
  const http::RequestHead& req = worker_.requestHead();
  head_request_ = req.method == "HEAD";
  keep_alive_ = req.keep_alive;
  text_ = worker_.takeText();
  forwarder_ = worker_.takeForwarder(client_, in_, watchdog_, id_);
  in_.consume(head_len);  // moves no bytes: the views stay valid until the next read
  const Outcome outcome = co_await normalizeAndRoute(req);
  worker_.giveForwarder(std::move(forwarder_));
  worker_.giveText(std::move(text_));
  co_return outcome;
}

asio::awaitable<HttpSession::Outcome> HttpSession::normalizeAndRoute(const http::RequestHead& req) {
  // Routing key: the absolute-form authority wins over Host (RFC 9112 §3.2.2).
  const std::string_view raw_host = req.authority.empty() ? req.host : req.authority;
  std::size_t host_len = 0;
  std::size_t path_len = 0;
  const ProxyConfig& cfg = worker_.config();
  // resize() within the reserved capacity allocates nothing; normalizing never lengthens.
  text_->host.resize(raw_host.size());
  text_->path.resize(req.path.size());
  if (!raw_host.empty() && !http::normalizeHost(raw_host, text_->host.data(), host_len)) {
    bump(globalStats().parse_errors[static_cast<std::size_t>(http::ParseError::kBadHost)]);
    co_return co_await sendLocal(LocalReply::k400, true, nullptr);
  }
  if (const http::PathError e =
          http::normalizePath(req.path, cfg.paths, text_->path.data(), path_len);
      e != http::PathError::kNone) {
    bump(globalStats().path_errors[static_cast<std::size_t>(e)]);
    SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] rejected path: {}", id_, http::pathErrorName(e));
    co_return co_await sendLocal(LocalReply::k400, true, nullptr);
  }
  if (req.body == http::BodyKind::kChunked && !in_.empty()) {
    // Body bytes that came with the head are checked before any upstream sees the head, so a
    // malformed chunked body in one packet never reaches a backend at all.
    http::ChunkedDecoder probe;
    probe.reset({.max_payload = cfg.max_request_body});
    if (auto r = probe.feed(in_.readable()); r.status == http::ParseStatus::kError) {
      bump(globalStats().parse_errors[static_cast<std::size_t>(r.error)]);
      const bool too_large = r.error == http::ParseError::kBodyTooLarge;
      co_return co_await sendLocal(too_large ? LocalReply::k413 : LocalReply::k400, true, nullptr);
    }
  }
  host_ = {text_->host.data(), host_len};
  path_ = {text_->path.data(), path_len};
  // A snapshot pinned for the whole request: a config swap mid-request changes nothing here.
  const std::shared_ptr<const Snapshot> snap = worker_.snapshot();
  if (!snap || !snap->routes) {
    // A request whose body we will not read leaves unread bytes on the connection: close it.
    co_return co_await sendLocal(LocalReply::k503, req.body != http::BodyKind::kNone, nullptr);
  }
  const TlsTable::Host* tls_host = snap->tls ? snap->tls->find(host_) : nullptr;
  forwarder().setHsts(client_.tls() && tls_host != nullptr ? std::string_view(tls_host->hsts)
                                                           : std::string_view());
  if (!client_.tls() && tls_host != nullptr && tls_host->redirect &&
      !forwardedHttps(req, trusted_peer_)) {
    co_return co_await redirectToHttps(req.path, req.query, req.body != http::BodyKind::kNone);
  }
  co_return co_await route(*snap, req);
}

asio::awaitable<HttpSession::Outcome> HttpSession::route(const Snapshot& snap,
                                                         const http::RequestHead& req) {
  // A request whose body we will not read leaves unread bytes on the connection: close it.
  const bool has_body = req.body != http::BodyKind::kNone;
  const router::Match match = snap.routes->match(host_, path_);
  RouteStats* route =
      match.route < snap.route_stats.size() ? snap.route_stats[match.route].get() : nullptr;
  if (match.cluster == router::kNoCluster || match.cluster >= snap.balancers.size()) {
    co_return co_await sendLocal(LocalReply::k404, has_body, route);
  }
  // The host's source ranges (sluice.dev/allow-/deny-source-ranges), on the client's address
  // (the PROXY header's when a trusted peer sent one).
  if (match.sources != nullptr && !match.sources->permits(client_ip_)) {
    co_return co_await sendLocal(LocalReply::k403, has_body, route);
  }
  const std::uint64_t limit = worker_.config().max_request_body;
  if (limit != 0 && req.body == http::BodyKind::kContentLength && req.content_length > limit) {
    co_return co_await sendLocal(LocalReply::k413, true, route);
  }
  if (snap.balancers[match.cluster]->endpoints().empty()) {
    co_return co_await sendLocal(LocalReply::k503, has_body, route);
  }
  auto& g = globalStats();
  g.active_requests.fetch_add(1, std::memory_order_relaxed);
  const bool keep_alive = req.keep_alive && !worker_.draining() && !close_after_;
  const Forwarder::Result r =
      co_await forwarder().forward(req, *text_, snap, match.cluster, forwarding(), keep_alive);
  g.active_requests.fetch_sub(1, std::memory_order_relaxed);
  switch (r.outcome) {
    case Forwarder::Outcome::kReply:
      co_return co_await sendLocal(r.reply, r.close, route);
    case Forwarder::Outcome::kUpgraded:
      finishRequest(r.status, route);
      co_await forwarder().tunnel();
      co_return Outcome::kClose;
    case Forwarder::Outcome::kKeepAlive:
    case Forwarder::Outcome::kClose:
      finishRequest(r.status, route);
      break;
  }
  co_return r.outcome == Forwarder::Outcome::kKeepAlive ? Outcome::kKeepAlive : Outcome::kClose;
}

asio::awaitable<void> HttpSession::linger() {
  // Lingering close after an error reply: the client may still be sending (a body we refused).
  // Closing with unread data would reset the connection and could destroy our reply before the
  // client reads it, so stop writing and discard input for a bounded time and volume.
  client_.shutdownSend();
  watchdog_.arm(kLingerTime);
  std::size_t discarded = 0;
  in_.acquire(worker_.buffers());
  while (discarded < kLingerBytes) {
    in_.clear();
    auto [ec, n] = co_await client_.readSome(in_.prepare());
    if (ec || n == 0) {
      break;
    }
    discarded += n;
  }
}

asio::awaitable<HttpSession::Outcome> HttpSession::sendLocal(LocalReply reply, bool close,
                                                             RouteStats* route) {
  globalStats().localReply(reply);
  const bool closing = close || close_after_ || worker_.draining() || !keep_alive_;
  std::string_view bytes = localReply(reply, closing);
  if (head_request_) {
    bytes = bytes.substr(0, bytes.find("\r\n\r\n") + 4);  // HEAD: same head, no body
  }
  watchdog_.arm(worker_.config().header_timeout);
  auto [ec, n] = co_await client_.write(asio::buffer(bytes));
  linger_ = closing && !ec;
  finishRequest(statusOf(reply), route);
  co_return ec || closing ? Outcome::kClose : Outcome::kKeepAlive;
}

void HttpSession::finishRequest(int status, RouteStats* route) {
  if (route != nullptr) {
    route->count(status);
  }
  if (accessLog() != nullptr) {
    writeAccessLog(status);
  }
}

void HttpSession::writeAccessLog(int status) {
  const lb::EndpointState* endpoint = forwarder_ ? forwarder().endpoint() : nullptr;
  std::string& line = worker_.logLine();  // the worker's: no allocation once it has grown
  line.clear();
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
  appendJson(line, endpoint != nullptr ? std::string_view(endpoint->key()) : "");
  line += ",\"duration_us\":";
  line += std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - request_start_).count());
  line += '}';
  accessLog()->write(line);
}

}  // namespace sluice::proxy

namespace sluice::proxy {

asio::awaitable<bool> HttpSession::startTls() {
  const ProxyConfig& cfg = worker_.config();
  TlsStats& t = tlsStats();
  // Handshakes cost the most CPU of anything a client can ask for: a cap, agent-wide.
  if (t.active_handshakes.fetch_add(1, std::memory_order_relaxed) >=
      static_cast<std::int64_t>(cfg.max_tls_handshakes)) {
    t.active_handshakes.fetch_sub(1, std::memory_order_relaxed);
    bump(t.over_capacity);
    co_return false;
  }
  // While it is under way the worker's block cache hands freed blocks back to malloc
  // (common/thread_cache.hpp): a burst of handshakes leaves no memory set aside.
  // And its TLS buffer region keeps the slots handshakes free for the next ones, until the last
  // handshake ends (tls/block_pool.hpp).
  thread_cache::beginSetup();
  tls::handshakeBegins();
  struct Leave {
    bool held = true;
    void release() {
      if (std::exchange(held, false)) {
        tlsStats().active_handshakes.fetch_sub(1, std::memory_order_relaxed);
        thread_cache::endSetup();
        tls::handshakeEnds();
      }
    }
    ~Leave() { release(); }
  } leave;
  watchdog_.arm(cfg.tls_handshake_timeout, Watchdog::kCapped);
  tls::ClientHelloReader reader(cfg.max_client_hello);
  if (!co_await readClientHello(reader)) {
    co_return false;
  }
  std::shared_ptr<const Snapshot> snap = worker_.snapshot();
  const TlsTable* table = snap ? snap->tls.get() : nullptr;
  if (table == nullptr) {
    bump(t.no_certificate);
    co_return false;
  }
  const tls::ClientHello& hello = reader.hello();
  if (const TlsTable::Passthrough* p = hello.has_sni ? table->passthrough(hello.sni) : nullptr;
      p != nullptr && p->cluster < snap->balancers.size()) {
    // Passthrough: the ClientHello (and anything behind it) goes to the backend verbatim, then
    // the relay carries the connection; the agent never decrypts a byte. Its Ingress's source
    // ranges apply by SNI (there is no request to answer 403: the connection closes).
    if (!p->sources.permits(client_ip_)) {
      bump(t.passthrough_refused);
      co_return false;
    }
    bump(t.passthrough);
    leave.release();  // routed: no handshake here any more, however long the relay runs
    watchdog_.disarm();
    std::string first;
    if (p->proxy_v2) {
      appendProxyHeader(first);
    }
    takeFirstFlight(reader, first);
    const std::uint32_t cluster = p->cluster;
    co_await relayToCluster(worker_, client_.socket(), std::move(snap), cluster,
                            {reinterpret_cast<const std::uint8_t*>(first.data()), first.size()});
    co_return false;
  }
  co_return co_await terminateTls(*table, reader);
}

void HttpSession::takeFirstFlight(const tls::ClientHelloReader& reader, std::string& out) {
  const auto consumed = reader.consumed();
  out.append(reinterpret_cast<const char*>(consumed.data()), consumed.size());
  out.append(in_.readable());
  in_.clear();
}

asio::awaitable<bool> HttpSession::readClientHello(tls::ClientHelloReader& reader) {
  TlsStats& t = tlsStats();
  in_.acquire(worker_.buffers());  // it may hold bytes already (behind a PROXY header)
  for (;;) {
    if (!in_.empty()) {
      const std::string_view bytes = in_.readable();
      const tls::FeedResult r =
          reader.feed({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
      in_.consume(r.used);
      if (r.status == tls::Status::kDone) {
        co_return true;
      }
      if (r.status == tls::Status::kError) {
        bump(t.hello_errors[static_cast<std::size_t>(reader.error()) % t.hello_errors.size()]);
        SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] ClientHello from {} refused: {}", id_,
                            client_ip_, tls::name(reader.error()));
        co_return false;
      }
    }
    in_.clear();
    auto [ec, n] = co_await client_.readSome(in_.prepare());
    if (ec || n == 0) {
      if (watchdog_.takeTimeout()) {
        bump(t.timeouts);
      }
      co_return false;
    }
    in_.commit(n);
  }
}

asio::awaitable<bool> HttpSession::terminateTls(const TlsTable& table,
                                                tls::ClientHelloReader& reader) {
  const ProxyConfig& cfg = worker_.config();
  TlsStats& t = tlsStats();
  const tls::ClientHello& hello = reader.hello();
  SSL_CTX* ctx = table.contextFor(hello.sni);
  if (ctx == nullptr) {
    bump(t.no_certificate);
    co_return false;
  }
  // kTLS only where it is safe: Debian 12's OpenSSL breaks a TLS 1.3 kTLS connection at the
  // first KeyUpdate, so a client that offers 1.3 (and so gets it) keeps userspace TLS.
  const bool ktls = cfg.ktls && !hello.offers_tls13;
  // OpenSSL reads the ClientHello again from what was consumed (and anything behind it): the
  // reader's own storage, moved (`hello` is not used after this).
  std::vector<std::uint8_t> replay = reader.takeConsumed();
  const std::string_view rest = in_.readable();
  replay.insert(replay.end(), rest.begin(), rest.end());
  in_.clear();
  auto conn = tls::Connection::accept(ctx, client_.socket().native_handle(), std::move(replay),
                                      ktls, cfg.own_tls13_records);
  if (!conn) {
    bump(t.failed);
    co_return false;
  }
  client_.startTls(std::move(conn));
  in_.releaseIfEmpty();
  if (!co_await client_.handshake()) {
    if (watchdog_.takeTimeout()) {
      bump(t.timeouts);
    } else {
      bump(t.failed);
      SPDLOG_LOGGER_DEBUG(log::get("proxy"), "[C{}] TLS handshake with {} failed: {}", id_,
                          client_ip_, client_.tlsConnection()->lastError());
    }
    co_return false;
  }
  const tls::Connection& done = *client_.tlsConnection();
  bump(t.handshakes);
  if (done.resumed()) {
    bump(t.resumed);
  }
  if (done.ktlsSend() || done.ktlsRecv()) {
    bump(t.ktls);
  }
  if (const tls::RecordLayer layer = done.recordLayer(); layer != tls::RecordLayer::kOpenSsl) {
    bump(t.record_layer[static_cast<std::size_t>(layer)]);
  }
  co_return true;
}

asio::awaitable<HttpSession::Outcome> HttpSession::redirectToHttps(std::string_view path,
                                                                   std::string_view query,
                                                                   bool has_body) {
  bump(tlsStats().redirects);
  const bool closing = has_body || close_after_ || worker_.draining() || !keep_alive_;
  std::string& out = text_->scratch;
  out.assign("HTTP/1.1 308 Permanent Redirect\r\nLocation: https://");
  const bool v6 = host_.find(':') != std::string_view::npos;
  out.append(v6 ? "[" : "").append(host_).append(v6 ? "]" : "");
  if (const std::uint16_t port = worker_.config().https_port; port != 443) {
    out.append(":").append(std::to_string(port));
  }
  out.append(path.empty() ? std::string_view("/") : path);
  if (!query.empty()) {
    out.append("?").append(query);
  }
  out.append("\r\nContent-Length: 0\r\n");
  out.append(closing ? "Connection: close\r\n\r\n" : "\r\n");
  watchdog_.arm(worker_.config().header_timeout);
  auto [ec, n] = co_await client_.write(asio::buffer(out));
  linger_ = closing && !ec;
  finishRequest(308, nullptr);
  co_return ec || closing ? Outcome::kClose : Outcome::kKeepAlive;
}

}  // namespace sluice::proxy

namespace sluice::proxy {

void HttpSession::appendProxyHeader(std::string& out) {
  // The client as this agent knows it (a trusted balancer's PROXY header included), and the
  // address it connected to.
  error_code ignored;
  const tcp::endpoint peer = client_.socket().remote_endpoint(ignored);
  const tcp::endpoint local = client_.socket().local_endpoint(ignored);
  auto toProxy = [](const asio::ip::address& a, std::uint16_t port) {
    http::ProxyAddress out;
    out.port = port;
    if (a.is_v4()) {
      const auto b = a.to_v4().to_bytes();
      std::copy(b.begin(), b.end(), out.bytes.begin());
    } else {
      out.v6 = true;
      out.bytes = a.to_v6().to_bytes();
    }
    return out;
  };
  error_code bad;
  const asio::ip::address client = asio::ip::make_address(client_ip_, bad);
  http::appendProxyV2(toProxy(bad ? peer.address() : client, peer.port()),
                      toProxy(local.address(), local.port()), out);
}

}  // namespace sluice::proxy
