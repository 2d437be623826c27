// Splice, every strategy: HTTP bodies above --splice-body-threshold move with splice(2) and the
// connection returns to the parser.
#include "splice_fixture.hpp"

namespace sluice::test {
namespace {

// ---- 9. bodies above the threshold -----------------------------------------------------------

// A keep-alive HTTP/1.1 backend for body tests:
//   PUT /sink          body digested; reply body is its SHA-256 (hex)
//   GET /stream/N/SEED reply with N bytes of ByteStream(SEED); the head and the first MiB of the
//                      body go out in one write, so the agent reads body bytes with the head
//   GET /small         reply "small-ok"
void bodyBackend(Socket& s) {
  std::string buf;
  char tmp[65536];
  auto fill = [&]() {
    pollfd p{s.fd(), POLLIN, 0};
    if (::poll(&p, 1, 30'000) <= 0) {
      return false;
    }
    ssize_t n = ::recv(s.fd(), tmp, sizeof tmp, 0);
    if (n <= 0) {
      return false;
    }
    buf.append(tmp, static_cast<std::size_t>(n));
    return true;
  };
  for (;;) {
    std::size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) {
        return;
      }
    }
    const std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);
    std::istringstream lines(head);
    std::string method, target;
    lines >> method >> target;
    std::uint64_t length = 0;
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (auto cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
      length = std::stoull(lower.substr(cl + 17));
    }
    Sha256 sha;
    std::uint64_t left = length;
    while (left > 0) {
      if (buf.empty() && !fill()) {
        return;
      }
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
      sha.update(buf.data(), k);
      buf.erase(0, k);
      left -= k;
    }
    if (method == "PUT" && target == "/sink") {
      const std::string digest = sha.hex();
      if (!sendAll(s.fd(), "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(digest.size()) +
                               "\r\n\r\n" + digest)) {
        return;
      }
    } else if (method == "GET" && target.rfind("/stream/", 0) == 0) {
      const std::uint64_t n = std::stoull(target.substr(8));
      const std::uint64_t seed = std::stoull(target.substr(target.find('/', 8) + 1));
      ByteStream bytes(seed);
      std::string out =
          "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
          "Content-Length: " +
          std::to_string(n) + "\r\n\r\n";
      std::uint64_t left_out = n;
      while (left_out > 0) {
        const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(left_out, kMiB));
        const std::size_t base = out.size();
        out.resize(base + k);
        bytes.fill(out.data() + base, k);
        if (!sendAll(s.fd(), out)) {
          return;
        }
        out.clear();
        left_out -= k;
      }
    } else if (method == "GET" && target == "/small") {
      if (!sendAll(s.fd(), "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmall-ok")) {
        return;
      }
    } else {
      sendAll(s.fd(), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
  }
}

TEST_P(Splice, LargeBodiesBothWaysThenKeepAliveResumes) {
  constexpr std::uint64_t kBody = 16 * kMiB;
  RawBackend backend(bodyBackend);
  writeHttpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent());

  Connection c(agent_->port());
  ASSERT_GE(c.fd(), 0);
  // Head and body in one write: the agent reads body bytes together with the head.
  const std::string body = ByteStream(101).take(kBody);
  ASSERT_TRUE(c.send("PUT /sink HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(kBody) +
                     "\r\n\r\n" + body));
  auto put = c.read(false, 30s);
  ASSERT_TRUE(put) << "no response to the 16 MiB PUT";
  EXPECT_EQ(put->status, 200);
  EXPECT_FALSE(put->closed);
  EXPECT_EQ(put->body, sha256Hex(body)) << "request body changed on the way";

  ASSERT_TRUE(c.send("GET /stream/" + std::to_string(kBody) + "/102 HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto get = c.read(false, 30s);
  ASSERT_TRUE(get) << "no response to the 16 MiB GET";
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body.size(), kBody);
  EXPECT_EQ(sha256Hex(get->body), streamSha256(102, kBody)) << "response body changed on the way";

  ASSERT_TRUE(c.send("GET /small HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto small = c.read(false, 10s);
  ASSERT_TRUE(small) << "the connection did not return to HTTP parsing after the bodies";
  EXPECT_EQ(small->status, 200);
  EXPECT_EQ(small->body, "small-ok");
  expectBodiesSpliced(2);
  expectAgentAlive();
}

TEST_P(Splice, RequestPipelinedBehindALargeBodyIsParsed) {
  constexpr std::uint64_t kBody = 16 * kMiB;
  RawBackend backend(bodyBackend);
  writeHttpRoute(backend.port());
  ASSERT_NO_FATAL_FAILURE(startAgent());

  Connection c(agent_->port());
  ASSERT_GE(c.fd(), 0);
  const std::string body = ByteStream(103).take(kBody);
  // The next request follows the body's last byte in the same write: it must not be spliced.
  ASSERT_TRUE(c.send("PUT /sink HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(kBody) +
                     "\r\n\r\n" + body + "GET /small HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto put = c.read(false, 30s);
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 200);
  EXPECT_EQ(put->body, sha256Hex(body));
  auto small = c.read(false, 10s);
  ASSERT_TRUE(small) << "the pipelined request behind the body got no response";
  EXPECT_EQ(small->status, 200);
  EXPECT_EQ(small->body, "small-ok");
  expectBodiesSpliced(1);
}

TEST_P(Splice, LargeBodiesThroughThePythonEchoBackend) {
  constexpr std::size_t kBody = 16 * kMiB;
  EchoBackend echo("web");
  writeHttpRoute(echo.port());
  ASSERT_NO_FATAL_FAILURE(startAgent());

  Connection c(agent_->port());
  const std::string body = ByteStream(104).take(kBody);
  ASSERT_TRUE(c.send("PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(kBody) +
                     "\r\n\r\n" + body));
  auto put = c.read(false, 30s);
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 200);
  auto v = put->json();
  ASSERT_TRUE(v.is_object()) << put->body.substr(0, 200);
  EXPECT_EQ(v.as_object().at("body_bytes").to_number<std::uint64_t>(), kBody);
  EXPECT_EQ(v.as_object().at("body_sha256").as_string(), sha256Hex(body));

  ASSERT_TRUE(c.send("GET /bytes/" + std::to_string(kBody) + " HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto get = c.read(false, 30s);
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body.size(), kBody);
  EXPECT_EQ(sha256Hex(get->body), sha256Hex(std::string(kBody, 'x')));

  ASSERT_TRUE(c.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto after = c.read(false, 10s);
  ASSERT_TRUE(after) << "the connection did not return to HTTP parsing after the bodies";
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(after->json().as_object().at("path").as_string(), "/after");
}

}  // namespace
}  // namespace sluice::test
