// The admin HTTP endpoint (loopback by default): /healthz, /readyz, /metrics, /debug/state.
// Runs on the control thread's io_context; the handler is called there, so it may read
// control-plane state without locks.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/result.hpp"

namespace sluice::admin {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using Handler = std::function<Response(std::string_view method, std::string_view path)>;

class Server {
public:
  Server(boost::asio::io_context& io, Handler handler);
  // Binds and starts accepting.
  Result<void> start(const boost::asio::ip::tcp::endpoint& endpoint);
  void stop();
  boost::asio::ip::tcp::endpoint localEndpoint() const;

private:
  void accept();

  boost::asio::io_context& io_;
  Handler handler_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
};

}  // namespace sluice::admin
