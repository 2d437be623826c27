#include "k8s/api/client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"

namespace sluice::k8s::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Client::Conn {
  Conn(asio::any_io_executor ex, asio::ssl::context& ctx) : stream(ex, ctx) {}
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
};

struct Client::Idle {
  std::unique_ptr<Conn> conn;
  std::chrono::steady_clock::time_point since;
};

namespace {

// Keeps a connection in the client's open list for its lifetime.
class OpenGuard {
public:
  OpenGuard(std::list<Client::Conn*>& list, Client::Conn* conn) : list_(list) {
    it_ = list_.insert(list_.end(), conn);
  }
  ~OpenGuard() { list_.erase(it_); }
  OpenGuard(const OpenGuard&) = delete;
  OpenGuard& operator=(const OpenGuard&) = delete;

private:
  std::list<Client::Conn*>& list_;
  std::list<Client::Conn*>::iterator it_;
};

bool isIpAddress(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string hostHeader(const ConnectionConfig& c) {
  const std::string host = c.host.find(':') != std::string::npos ? "[" + c.host + "]" : c.host;
  return c.port == "443" ? host : host + ":" + c.port;
}

// The peer closed or reset the connection (not a timeout, not a protocol error).
bool closedByPeer(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == http::error::end_of_stream ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated;
}

std::string errorText(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) {
    return "timed out";
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
    return std::string("TLS: ") + buf;
  }
  return ec.message();
}

}  // namespace

std::string Response::describe() const {
  std::string text = std::to_string(status);
  // The API server answers errors with a Status object; its message is the useful part.
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  const boost::json::object* o = ec ? nullptr : v.if_object();
  const boost::json::value* msg = o != nullptr ? o->if_contains("message") : nullptr;
  if (msg != nullptr && msg->is_string()) {
    text += ": " + std::string(msg->get_string().subview(
                       0, std::min<std::size_t>(msg->get_string().size(), 300)));
  } else if (!body.empty()) {
    text += ": " + body.substr(0, 200);
  }
  return text;
}

std::string describe(const Result<Response>& r) {
  return r ? r->describe() : r.error().message();
}

void renderClientMetrics(admin::MetricsWriter& out, std::string_view client,
                         const ClientStats& stats) {
  using Type = admin::MetricsWriter::Type;
  out.family("sluice_k8s_api_requests_total", Type::kCounter,
             "Requests to the API server, by client.");
  out.sample("sluice_k8s_api_requests_total", {{"client", client}}, stats.requests);
  out.family("sluice_k8s_api_connections_total", Type::kCounter,
             "TLS connections opened to the API server, by client (requests reuse kept-alive "
             "ones).");
  out.sample("sluice_k8s_api_connections_total", {{"client", client}}, stats.connections);
}

std::string urlEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<std::shared_ptr<Client>> Client::create(asio::any_io_executor executor,
                                               ConnectionConfig config, ClientOptions options) {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1,
                  ec);
  if (!config.ca_pem.empty()) {
    ctx.add_certificate_authority(asio::buffer(config.ca_pem), ec);
    if (ec) {
      return Error(config.source + ": certificate authority: not a PEM certificate (" +
                   errorText(ec) + ")");
    }
  } else {
    ctx.set_default_verify_paths(ec);
  }
  if (!config.client_cert_pem.empty()) {
    ctx.use_certificate_chain(asio::buffer(config.client_cert_pem), ec);
    if (ec) {
      return Error(config.source + ": client certificate: " + errorText(ec));
    }
    ctx.use_private_key(asio::buffer(config.client_key_pem), asio::ssl::context::pem, ec);
    if (ec) {
      return Error(config.source + ": client key: " + errorText(ec));
    }
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
      return Error(config.source + ": client key does not match the client certificate");
    }
  }
  ctx.set_verify_mode(
      config.insecure_skip_tls_verify ? asio::ssl::verify_none : asio::ssl::verify_peer, ec);
  return std::make_shared<Client>(std::move(executor), std::move(config), std::move(options),
                                  std::move(ctx));
}

Client::Client(asio::any_io_executor executor, ConnectionConfig config, ClientOptions options,
               asio::ssl::context ctx)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      options_(std::move(options)),
      ctx_(std::move(ctx)) {}

Client::~Client() = default;

void Client::shutdown() {
  shut_down_ = true;
  for (Conn* c : open_) {
    boost::system::error_code ec;
    beast::get_lowest_layer(c->stream).socket().close(ec);
  }
  idle_.clear();
}

std::unique_ptr<Client::Conn> Client::takeIdle() {
  const auto now = std::chrono::steady_clock::now();
  while (!idle_.empty()) {
    Idle idle = std::move(idle_.back());
    idle_.pop_back();
    boost::system::error_code ec;
    // Bytes on an idle connection (a TLS close_notify, a 408) are no answer to our next request.
    const auto pending = beast::get_lowest_layer(idle.conn->stream).socket().available(ec);
    if (now - idle.since < options_.max_idle_time && !ec && pending == 0) {
      return std::move(idle.conn);
    }
  }
  return nullptr;
}

void Client::keepIdle(std::unique_ptr<Conn> conn) {
  if (shut_down_ || options_.max_idle == 0) {
    return;
  }
  if (idle_.size() >= options_.max_idle) {
    idle_.erase(idle_.begin());  // the oldest goes
  }
  idle_.push_back({std::move(conn), std::chrono::steady_clock::now()});
}

void Client::noteStatus(unsigned status) {
  if (status == 401) {
    ++stats_.unauthorized;
    // The token may have been rotated in place with the same stat identity: read it again now.
    if (config_.token.fromFile()) {
      config_.token.current(true);
    }
  }
}

awaitable<Result<void>> Client::connect(Conn& conn) {
  if (shut_down_) {
    co_return Error("client shut down");
  }
  asio::ip::tcp::resolver resolver(executor_);
  auto [rec, results] = co_await resolver.async_resolve(config_.host, config_.port, kTuple);
  if (rec) {
    co_return Error("resolve " + config_.host + ": " + rec.message());
  }
  SSL* ssl = conn.stream.native_handle();
  const std::string& verify_name =
      config_.tls_server_name.empty() ? config_.host : config_.tls_server_name;
  if (!isIpAddress(verify_name)) {
    SSL_set_tlsext_host_name(ssl, verify_name.c_str());
  }
  if (!config_.insecure_skip_tls_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int ok = isIpAddress(verify_name)
                       ? X509_VERIFY_PARAM_set1_ip_asc(param, verify_name.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, verify_name.c_str(), 0);
    if (ok != 1) {
      co_return Error("cannot verify against " + verify_name);
    }
  }
  auto& tcp = beast::get_lowest_layer(conn.stream);
  tcp.expires_after(options_.connect_timeout);
  auto [cec, ep] = co_await tcp.async_connect(results, kTuple);
  if (cec) {
    co_return Error("connect " + config_.server + ": " + errorText(cec));
  }
  if (shut_down_) {
    co_return Error("client shut down");
  }
  auto [hec] = co_await conn.stream.async_handshake(asio::ssl::stream_base::client, kTuple);
  if (hec) {
    std::string text = "TLS handshake with " + config_.server + ": " + errorText(hec);
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      text += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
    }
    co_return Error(std::move(text));
  }
  co_return success();
}

namespace {

// Headers of every request: JSON, with the bearer token if any. A watch's connection is its own
// and closes with it; other requests keep theirs alive for the next one.
void setRequestHeaders(http::request_header<>& req, const std::string& host,
                       const std::string& user_agent, const std::string& token, bool keep_alive) {
  req.set(http::field::host, host);
  req.set(http::field::user_agent, user_agent);
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, keep_alive ? "keep-alive" : "close");
  if (!token.empty()) {
    req.set(http::field::authorization, "Bearer " + token);
  }
}

}  // namespace

awaitable<Result<Response>> Client::get(std::string target) {
  return exchange(Method::kGet, std::move(target), {});
}

awaitable<Result<Response>> Client::put(std::string target, std::string body) {
  return exchange(Method::kPut, std::move(target), std::move(body));
}

awaitable<Result<Response>> Client::post(std::string target, std::string body) {
  return exchange(Method::kPost, std::move(target), std::move(body));
}

awaitable<Result<Response>> Client::exchange(Method verb, std::string target, std::string body) {
  auto self = shared_from_this();
  ++stats_.requests;
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<Conn> conn = attempt == 0 ? takeIdle() : nullptr;
    const bool reused = conn != nullptr;
    if (!reused) {
      conn = std::make_unique<Conn>(executor_, ctx_);
    }
    OpenGuard guard(open_, conn.get());
    if (!reused) {
      if (Result<void> connected = co_await connect(*conn); !connected) {
        ++stats_.failures;
        co_return connected.error();
      }
      ++stats_.connections;
    } else {
      ++stats_.reused;
    }
    Attempt attempt_result = co_await send(*conn, verb, target, body);
    if (attempt_result.response) {
      noteStatus(attempt_result.response->status);
      if (attempt_result.keep) {
        keepIdle(std::move(conn));
      }
      co_return std::move(attempt_result.response);
    }
    if (!reused || !attempt_result.stale || shut_down_) {
      ++stats_.failures;
      co_return std::move(attempt_result.response);
    }
    // The server had closed the idle connection: it ended before any answer, at once (never a
    // timeout, which would double the wait). Once more on a new connection; a PUT or POST that
    // did land the first time gets 409 now, which every caller handles.
    ++stats_.retried;
  }
}

awaitable<Client::Attempt> Client::send(Conn& conn, Method verb, const std::string& target,
                                        const std::string& body) {
  const char* method = verb == Method::kGet ? "GET " : verb == Method::kPut ? "PUT " : "POST ";
  http::request<http::string_body> req{verb == Method::kGet   ? http::verb::get
                                       : verb == Method::kPut ? http::verb::put
                                                              : http::verb::post,
                                       target, 11};
  setRequestHeaders(req, hostHeader(config_), options_.user_agent, config_.token.current(), true);
  if (verb != Method::kGet) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  auto& tcp = beast::get_lowest_layer(conn.stream);
  tcp.expires_after(options_.request_timeout);
  auto [wec, wn] = co_await http::async_write(conn.stream, req, kTuple);
  if (wec) {
    co_return Attempt{Error(method + target + ": " + errorText(wec)), false, closedByPeer(wec)};
  }
  conn.buffer.consume(conn.buffer.size());
  http::response_parser<http::string_body> parser;
  parser.body_limit(options_.max_body);
  auto [rec, rn] = co_await http::async_read(conn.stream, conn.buffer, parser, kTuple);
  if (rec) {
    co_return Attempt{
        Error(method + target + ": " +
              (rec == http::error::body_limit
                   ? "response larger than " + std::to_string(options_.max_body) + " bytes"
                   : errorText(rec))),
        false, closedByPeer(rec) && !parser.got_some()};
  }
  const bool keep = parser.get().keep_alive() && conn.buffer.size() == 0;
  co_return Attempt{Response{parser.get().result_int(), std::move(parser.get().body())}, keep,
                    false};
}

awaitable<WatchEnd> Client::watch(std::string target, std::chrono::milliseconds idle_timeout,
                                  LineHandler on_line) {
  auto self = shared_from_this();
  WatchEnd end;
  ++stats_.requests;
  Conn conn(executor_, ctx_);
  OpenGuard guard(open_, &conn);
  if (Result<void> connected = co_await connect(conn); !connected) {
    ++stats_.failures;
    end.error = connected.error();
    co_return end;
  }
  ++stats_.connections;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  setRequestHeaders(req, hostHeader(config_), options_.user_agent, config_.token.current(), false);
  auto& tcp = beast::get_lowest_layer(conn.stream);
  tcp.expires_after(options_.request_timeout);
  auto [wec, wn] = co_await http::async_write(conn.stream, req, kTuple);
  if (wec) {
    ++stats_.failures;
    end.error = Error("watch " + target + ": " + errorText(wec));
    co_return end;
  }
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  auto [hec, hn] = co_await http::async_read_header(conn.stream, conn.buffer, parser, kTuple);
  if (hec) {
    ++stats_.failures;
    end.error = Error("watch " + target + ": " + errorText(hec));
    co_return end;
  }
  end.status = parser.get().result_int();
  noteStatus(end.status);
  const bool streaming = end.status == 200;
  const std::size_t limit = streaming ? options_.max_line : 64 * 1024;

  std::array<char, 16 * 1024> chunk;
  std::string pending;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    tcp.expires_after(streaming ? idle_timeout : options_.request_timeout);
    auto [ec, n] = co_await http::async_read_some(conn.stream, conn.buffer, parser, kTuple);
    if (ec == http::error::need_buffer) {
      ec = {};
    }
    const std::size_t got = chunk.size() - parser.get().body().size;
    pending.append(chunk.data(), got);
    if (!streaming) {
      if (pending.size() > limit) {
        pending.resize(limit);
        break;
      }
    } else {
      std::size_t start = 0;
      for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string_view line(pending.data() + start, nl - start);
        if (!line.empty() && line.back() == '\r') {
          line.remove_suffix(1);
        }
        if (line.empty()) {
          continue;
        }
        ++end.lines;
        if (!on_line(line)) {
          end.stopped = true;
          co_return end;
        }
      }
      pending.erase(0, start);
      if (pending.size() > limit) {
        end.error = Error("watch event larger than " + std::to_string(limit) + " bytes");
        co_return end;
      }
    }
    if (ec) {
      if (ec == beast::error::timeout) {
        end.idle_timeout = streaming;
        end.error = Error(streaming ? "no data for " + std::to_string(idle_timeout.count()) + " ms"
                                    : std::string("timed out"));
      } else {
        end.error = Error(errorText(ec));
      }
      break;
    }
  }
  if (!streaming) {
    end.body = std::move(pending);
  } else if (!end.error && !pending.empty()) {
    // A final event without a trailing newline.
    ++end.lines;
    if (!on_line(pending)) {
      end.stopped = true;
    }
  }
  co_return end;
}

}  // namespace sluice::k8s::api
