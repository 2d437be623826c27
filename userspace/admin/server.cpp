#include "admin/server.hpp"

#include <chrono>
#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "common/net.hpp"

namespace sluice::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> Server::serve(tcp::socket socket) {
  const Handler& handler = handler_;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(8192);
  for (;;) {
    stream.expires_after(std::chrono::seconds(10));
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(8192);
    parser.body_limit(4096);
    auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
    if (ec) {
      break;
    }
    const auto& req = parser.get();
    std::string_view target(req.target().data(), req.target().size());
    if (auto q = target.find('?'); q != std::string_view::npos) {
      target = target.substr(0, q);
    }
    Response r =
        handler(std::string_view(req.method_string().data(), req.method_string().size()), target);
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), req.version()};
    res.set(bhttp::field::server, "sluice-admin");
    res.set(bhttp::field::content_type, r.content_type);
    res.set(bhttp::field::cache_control, "no-store");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(r.body);
    res.prepare_payload();
    auto [wec, wn] = co_await bhttp::async_write(stream, res, kNoThrow);
    if (wec || !res.keep_alive()) {
      break;
    }
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.socket().close(ignored);
  --open_;
  if (paused_) {
    paused_ = false;
    accept();
  }
}

Server::Server(asio::io_context& io, Handler handler)
    : io_(io), handler_(std::move(handler)), retry_(io) {}

Result<void> Server::start(const tcp::endpoint& endpoint) {
  acceptor_.emplace(io_);
  if (auto listening = net::listen(*acceptor_, endpoint, {.backlog = 64}); !listening) {
    acceptor_.reset();
    return listening.error().wrap("admin");
  }
  accept();
  return success();
}

void Server::accept() {
  if (!acceptor_ || !acceptor_->is_open()) {
    return;
  }
  if (open_ >= kMaxConnections) {
    paused_ = true;  // the kernel's backlog holds the next ones; serve() resumes
    return;
  }
  acceptor_->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_ || !acceptor_->is_open()) {
      return;
    }
    if (ec) {
      // EMFILE and the like leave the connection queued: retrying at once would spin.
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](boost::system::error_code wec) {
        if (!wec) {
          accept();
        }
      });
      return;
    }
    ++open_;
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    accept();
  });
}

void Server::stop() {
  if (acceptor_) {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
  }
  retry_.cancel();
}

tcp::endpoint Server::localEndpoint() const {
  boost::system::error_code ec;
  return acceptor_ ? acceptor_->local_endpoint(ec) : tcp::endpoint{};
}

}  // namespace sluice::admin
