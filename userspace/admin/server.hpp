// The admin HTTP endpoint (loopback by default): /healthz, /readyz, /metrics, /debug/state.
// Runs on the control thread's io_context; the handler is called there, so it may read
// control-plane state without locks.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/result.hpp"

namespace sluice::admin {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using Handler = std::function<Response(std::string_view method, std::string_view path)>;

// At most kMaxConnections at once: at the cap accepting pauses until one closes, and a failed
// accept (EMFILE) retries after a pause instead of spinning.
class Server {
public:
  static constexpr std::size_t kMaxConnections = 64;

  Server(boost::asio::io_context& io, Handler handler);
  // Binds and starts accepting.
  Result<void> start(const boost::asio::ip::tcp::endpoint& endpoint);
  void stop();
  boost::asio::ip::tcp::endpoint localEndpoint() const;

  std::size_t open() const { return open_; }

private:
  void accept();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  Handler handler_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
  boost::asio::steady_timer retry_;
  std::size_t open_ = 0;
  bool paused_ = false;
};

}  // namespace sluice::admin
