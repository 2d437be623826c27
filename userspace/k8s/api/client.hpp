// A small HTTPS client for the Kubernetes API: one coroutine per request on the caller's
// executor, errors as values, every wait bounded. GET/PUT/POST reuse kept-alive connections (the
// leader renews its Lease every few seconds: a TLS handshake each time would load the API
// server); a request that fails on a reused connection (the server closed it while idle) is sent
// once more on a new one. Each watch has a connection of its own.
//
// Not thread-safe: all calls must come from the executor's thread (the agent's control thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "admin/metrics.hpp"
#include "common/result.hpp"
#include "k8s/api/kubeconfig.hpp"

namespace sluice::k8s::api {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};  // TCP connect + TLS handshake
  std::chrono::milliseconds request_timeout{60'000};  // a whole GET/PUT; a watch's headers
  std::size_t max_body = 128u << 20;                  // GET/PUT response body
  std::size_t max_line = 16u << 20;                   // one watch event
  std::size_t max_idle = 2;                           // kept-alive connections kept for reuse
  std::chrono::milliseconds max_idle_time{60'000};    // an idle connection older is not reused
  std::string user_agent = "sluice-ingress/0.1";
};

// An HTTP response; a request that got none (connect, TLS, timeout, too large) is an Error.
struct Response {
  unsigned status = 0;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
  // "403: <the Status object's message>" style text for logs and warnings.
  std::string describe() const;
};

// The HTTP status of a request, 0 when it got no response.
inline unsigned statusOf(const Result<Response>& r) {
  return r ? r->status : 0;
}
// describe() of the response, or the message of the transport error.
std::string describe(const Result<Response>& r);

struct WatchEnd {
  unsigned status = 0;  // HTTP status of the watch response; 0 if none arrived
  std::string body;     // the response body when status != 200 (bounded)
  // How the stream failed (no connection, no response head, a read error or timeout, an event
  // over max_line); empty when the server ended it cleanly (e.g. timeoutSeconds).
  std::optional<Error> error;
  bool idle_timeout = false;
  bool stopped = false;  // the line handler asked to stop
  std::uint64_t lines = 0;
};

struct ClientStats {
  std::uint64_t requests = 0;
  std::uint64_t failures = 0;      // transport failures (status 0)
  std::uint64_t unauthorized = 0;  // 401 responses
  std::uint64_t connections = 0;   // TLS connections established
  std::uint64_t reused = 0;        // requests sent on a kept-alive connection
  std::uint64_t retried = 0;       // requests re-sent after a reused connection failed
};

class Client : public std::enable_shared_from_this<Client> {
public:
  // Fails on a bad CA or client certificate/key.
  static Result<std::shared_ptr<Client>> create(boost::asio::any_io_executor executor,
                                                ConnectionConfig config,
                                                ClientOptions options = {});

  // GET target ("/api/v1/services?limit=500"); the body is bounded by max_body.
  boost::asio::awaitable<Result<Response>> get(std::string target);
  // PUT with a JSON body, e.g. an Ingress's /status subresource or a Lease renewal.
  boost::asio::awaitable<Result<Response>> put(std::string target, std::string body);
  // POST with a JSON body: creates an object in the collection `target`.
  boost::asio::awaitable<Result<Response>> post(std::string target, std::string body);

  // Called with each complete line of a watch stream (one event each, without the newline).
  // Return false to end the watch.
  using LineHandler = std::function<bool(std::string_view line)>;
  // Streams a watch response line by line as the chunks arrive. Ends when the server ends the
  // response, the connection fails, nothing arrives for `idle_timeout`, or the handler says stop.
  boost::asio::awaitable<WatchEnd> watch(std::string target, std::chrono::milliseconds idle_timeout,
                                         LineHandler on_line);

  // Closes every open and idle connection (their requests fail at once) and fails all later
  // requests.
  void shutdown();

  const boost::asio::any_io_executor& executor() const { return executor_; }
  const ClientStats& stats() const { return stats_; }
  const ConnectionConfig& config() const { return config_; }
  TokenSource& token() { return config_.token; }

  Client(boost::asio::any_io_executor executor, ConnectionConfig config, ClientOptions options,
         boost::asio::ssl::context ctx);
  ~Client();

  struct Conn;  // one TLS connection (defined in client.cpp)

private:
  boost::asio::awaitable<Result<void>> connect(Conn& conn);
  enum class Method { kGet, kPut, kPost };
  // GET (no body), PUT or POST (JSON body) on a kept-alive or new connection, bounded by
  // max_body; retried once on a new connection if a reused one fails.
  boost::asio::awaitable<Result<Response>> exchange(Method method, std::string target,
                                                    std::string body);
  // One request on one connection.
  struct Attempt {
    Result<Response> response;  // or the transport error
    bool keep = false;          // the connection may carry another request
    bool stale = false;         // failed: the server had closed it before any answer
  };
  boost::asio::awaitable<Attempt> send(Conn& conn, Method method, const std::string& target,
                                       const std::string& body);
  std::unique_ptr<Conn> takeIdle();
  void keepIdle(std::unique_ptr<Conn> conn);
  void noteStatus(unsigned status);

  boost::asio::any_io_executor executor_;
  ConnectionConfig config_;
  ClientOptions options_;
  boost::asio::ssl::context ctx_;
  std::list<Conn*> open_;  // for shutdown()
  struct Idle;
  std::vector<Idle> idle_;
  bool shut_down_ = false;
  ClientStats stats_;
};

// sluice_k8s_api_requests_total and sluice_k8s_api_connections_total of one client.
void renderClientMetrics(admin::MetricsWriter& out, std::string_view client,
                         const ClientStats& stats);

// Percent-encodes a query parameter value.
std::string urlEncode(std::string_view value);

}  // namespace sluice::k8s::api
