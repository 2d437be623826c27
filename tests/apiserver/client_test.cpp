// The API client's connection reuse against the fake API server: kept-alive connections carry
// the leader's periodic requests, and one the server dropped while idle costs a retry, not a
// failure.
#include <string>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include "fake.hpp"
#include "k8s/api/client.hpp"

namespace sluice::k8s::api {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class ClientReuse : public ::testing::Test {
protected:
  ClientReuse() {
    test::writeFileAtomic(fake_.dir() / "client-token", "token-1\n");
    fake_.apply(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"web",)"
                R"("namespace":"default"},"spec":{"ports":[{"port":80}]}})");
    ClientOptions options;
    options.request_timeout = 5s;
    auto made = Client::create(io_.executor(),
                               test::fakeConnection(fake_, fake_.dir() / "client-token"), options);
    EXPECT_OK(made);
    client_ = *made;
  }
  ~ClientReuse() override {
    io_.run([&] { client_->shutdown(); });
    EXPECT_TRUE(io_.windDown(5s));
  }

  Result<Response> get(const std::string& target) {
    return test::awaitOn(io_.executor(), client_->get(target));
  }
  ClientStats stats() {
    return io_.run([&] { return client_->stats(); });
  }

  test::FakeApiServer fake_;
  test::IoThread io_;
  std::shared_ptr<Client> client_;
};

TEST_F(ClientReuse, SequentialRequestsShareOneConnection) {
  for (int i = 0; i < 20; ++i) {
    Result<Response> r = get("/api/v1/namespaces/default/services/web");
    ASSERT_EQ(statusOf(r), 200u) << describe(r);
  }
  const ClientStats s = stats();
  EXPECT_EQ(s.connections, 1u);
  EXPECT_EQ(s.reused, 19u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(fake_.requests().as_array().size(), 20u);
}

TEST_F(ClientReuse, AConnectionTheServerDroppedIsReplacedNotFailed) {
  ASSERT_EQ(statusOf(get("/api/v1/namespaces/default/services/web")), 200u);
  fake_.fault(R"({"close_after_reply": 1})");
  // The server answers this one on the kept-alive connection, then closes it.
  ASSERT_EQ(statusOf(get("/api/v1/namespaces/default/services/web")), 200u);
  std::this_thread::sleep_for(100ms);
  // The pooled connection is dead: this request fails on it, and is sent again on a new one.
  Result<Response> r = get("/api/v1/namespaces/default/services/web");
  EXPECT_EQ(statusOf(r), 200u) << describe(r);
  const ClientStats s = stats();
  EXPECT_EQ(s.retried, 1u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.connections, 2u);
}

TEST_F(ClientReuse, ShutdownClosesIdleConnectionsAndRefusesRequests) {
  ASSERT_EQ(statusOf(get("/api/v1/namespaces/default/services/web")), 200u);
  io_.run([&] { client_->shutdown(); });
  Result<Response> r = get("/api/v1/namespaces/default/services/web");
  EXPECT_FALSE(r);
  EXPECT_EQ(test::errorOf(r), "client shut down");
}

}  // namespace
}  // namespace sluice::k8s::api
