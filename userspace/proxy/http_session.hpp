// One downstream HTTP connection: a coroutine that reads request heads, routes each on a pinned
// snapshot, hands it to the Forwarder, and answers errors itself, in order, until the
// connection closes. A Watchdog (one timer) enforces every timeout through one deadline.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/buffer.hpp"
#include "http/parser.hpp"
#include "proxy/admission.hpp"
#include "proxy/client_stream.hpp"
#include "proxy/forwarder.hpp"
#include "proxy/stats.hpp"
#include "proxy/watchdog.hpp"
#include "tls/client_hello.hpp"

namespace sluice::proxy {

class Worker;
struct RequestText;
struct Snapshot;
class TlsTable;

class HttpSession : public std::enable_shared_from_this<HttpSession> {
public:
  HttpSession(Worker& worker, boost::asio::ip::tcp::socket socket, ConnectionLimit::Slot slot,
              bool tls);
  ~HttpSession();

  // `slot`: the connection's place under --max-connections, held for the session's life.
  // `tls`: the HTTPS listener's connection (a ClientHello comes first).
  static void start(Worker& worker, boost::asio::ip::tcp::socket socket, ConnectionLimit::Slot slot,
                    bool tls);
  // Drain: a session waiting for its next request is closed now; a busy one closes after its
  // current response.
  void closeIfIdle();

  HttpSession* prev = nullptr;  // Worker's intrusive list
  HttpSession* next = nullptr;

private:
  using Clock = std::chrono::steady_clock;
  // What happened to a request; decides whether the connection carries on.
  enum class Outcome : std::uint8_t { kKeepAlive, kClose };

  // Serves requests until the connection closes or goes idle (then park()). `woken`: park()'s
  // wait said the client sent something; the request is read from readHead() on.
  boost::asio::awaitable<void> run(bool woken);
  // The idle wait between requests as a plain completion handler, so that an idle connection
  // holds no coroutine frame: on readiness it starts run(true), on an error or timeout close().
  void park();
  // close_notify and FIN to the client; the watchdog lets go of the session.
  void close();
  // --proxy-protocol: before the first request, a trusted peer may send a PROXY header (v1 or
  // v2); its source address becomes the client's. An untrusted peer that sends one, or a
  // malformed header, closes the connection (false).
  boost::asio::awaitable<bool> readProxyHeader();
  // HTTPS: reads the ClientHello (bounded by --tls-handshake-timeout), then either relays the
  // connection undecrypted to a passthrough host's backend, or completes the handshake with the
  // SNI's certificate. True when HTTP requests follow.
  boost::asio::awaitable<bool> startTls();
  // Reads and parses the ClientHello into `reader`; false if it was refused or never came.
  boost::asio::awaitable<bool> readClientHello(tls::ClientHelloReader& reader);
  // The ClientHello bytes the reader consumed, then whatever arrived behind them, appended to
  // `out` (the first flight, for OpenSSL or a passthrough backend); empties the input buffer.
  void takeFirstFlight(const tls::ClientHelloReader& reader, std::string& out);
  boost::asio::awaitable<bool> terminateTls(const TlsTable& table, tls::ClientHelloReader& reader);
  // A PROXY protocol v2 header for this connection (passthrough with sluice.dev/proxy-protocol).
  void appendProxyHeader(std::string& out);
  // A TLS host's plain request: 308 to https with the same host and target.
  boost::asio::awaitable<Outcome> redirectToHttps(std::string_view path, std::string_view query,
                                                  bool has_body);
  // Whether client_ip_ is a --trusted-proxies peer (its forwarding headers are believed).
  void setTrust();
  // What the forwarding headers say about this connection (built per request, not kept: an idle
  // connection holds only its parts).
  http::Forwarding forwarding() const;
  // The idle wait (holding no buffer) until the client sends or closes, in two halves around
  // ClientStream::waitReadable() (park(), or readProxyHeader()'s first wait): begin arms the
  // idle timeout (false: the agent is draining or the session closing); end takes the buffer
  // (false: the wait failed or timed out).
  bool beginIdleWait();
  bool endIdleWait(boost::system::error_code ec);
  // After the idle wait (idle_ says whether there was one): reads until a whole head is in the
  // buffer (or the head is refused, or the connection ends).
  // kIncomplete with consumed 0: the connection ended or timed out before a head. The head is
  // parsed into the worker's scratch (Worker::requestHead()).
  boost::asio::awaitable<http::ParseResult> readHead();
  boost::asio::awaitable<Outcome> handleRequest(std::size_t head_len);
  boost::asio::awaitable<Outcome> normalizeAndRoute(const http::RequestHead& req);
  // Matches the request against `snap` and forwards it, or answers it (404, 413, 503).
  boost::asio::awaitable<Outcome> route(const Snapshot& snap, const http::RequestHead& req);
  boost::asio::awaitable<Outcome> sendLocal(LocalReply reply, bool close, RouteStats* route);
  // After an error reply: discard what the client still sends, for a bounded time and volume.
  boost::asio::awaitable<void> linger();
  void finishRequest(int status, RouteStats* route);
  // The request's Forwarder (only while handleRequest() runs).
  Forwarder& forwarder() { return *forwarder_->forwarder; }
  void writeAccessLog(int status);

  Worker& worker_;
  ClientStream client_;
  ConnectionLimit::Slot slot_;
  Watchdog watchdog_;
  const std::uint64_t id_;
  std::string client_ip_;
  std::array<char, 5> port_{};  // the listener's port as text, for X-Forwarded-Port
  std::uint8_t port_len_ = 0;
  bool trusted_peer_ = false;
  Buffer in_;  // storage only while there are bytes to handle (Worker::buffers())
  // Lent by the worker for one request (handleRequest()), like text_.
  std::unique_ptr<ForwarderSlot> forwarder_;
  std::unique_ptr<RequestText> text_;  // lent by the worker for one request
  std::string_view path_;              // into text_: the normalized routing path and host
  std::string_view host_;
  Clock::time_point request_start_{};
  bool idle_ = true;         // waiting for the first byte of a request
  bool stale_wake_ = false;  // park()'s wait completed with nothing to read: park again
  bool close_after_ = false;
  bool linger_ = false;
  bool head_request_ = false;
  bool keep_alive_ = true;  // the request allowed keep-alive
  const bool tls_listener_;
};

}  // namespace sluice::proxy
