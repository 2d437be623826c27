// The admin listener against real loopback sockets: its connection cap pauses accepting and a
// closing connection resumes it.
#include "admin/server.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "support/sockets.hpp"

namespace sluice::admin {
namespace {

using namespace std::chrono_literals;
using test::Socket;

class AdminServer : public ::testing::Test {
protected:
  void SetUp() override {
    server_ = std::make_unique<Server>(io_, [](std::string_view, std::string_view path) {
      return Response{200, "text/plain", std::string(path)};
    });
    auto started = server_->start({boost::asio::ip::make_address("127.0.0.1"), 0});
    ASSERT_TRUE(started) << started.error().message();
    port_ = server_->localEndpoint().port();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    boost::asio::post(io_, [this] { server_->stop(); });
    io_.stop();
    thread_.join();
  }
  // A GET on `s`; its status line, or "" when nothing comes back within `timeout`.
  static std::string get(const Socket& s, std::chrono::milliseconds timeout) {
    if (!test::sendAll(s.fd(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) {
      return "";
    }
    auto reply = test::recvUntil(s.fd(), "/healthz", timeout);
    return reply ? reply->substr(0, reply->find("\r\n")) : "";
  }

  boost::asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

TEST_F(AdminServer, AtItsCapItStopsAcceptingAndResumesWhenAConnectionCloses) {
  std::vector<Socket> held;
  for (std::size_t i = 0; i < Server::kMaxConnections; ++i) {
    held.push_back(test::connectLoopback(port_));
    ASSERT_TRUE(held.back().valid());
    ASSERT_EQ(get(held.back(), 5s), "HTTP/1.1 200 OK") << i;  // accepted and served
  }
  // The next one completes its handshake in the kernel's backlog but is not accepted.
  Socket extra = test::connectLoopback(port_);
  ASSERT_TRUE(extra.valid());
  EXPECT_EQ(get(extra, 500ms), "");
  // A held connection closes: its slot goes to the waiting one, whose request is then served.
  held.front().close();
  auto reply = test::recvUntil(extra.fd(), "/healthz", 5s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->substr(0, reply->find("\r\n")), "HTTP/1.1 200 OK");
}

}  // namespace
}  // namespace sluice::admin
