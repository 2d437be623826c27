// Every request of the malformed/smuggling corpus, sent through the real agent, must be answered
// with a 4xx and a close (or just a close), and must never reach the backend: not the request
// itself and not a smuggled one hidden in its body.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace sluice::test {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> corpus() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(SLUICE_CORPUS_DIR "/malformed")) {
    if (e.path().extension() == ".http") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Smuggling, CorpusIsLargeEnough) {
  EXPECT_GE(corpus().size(), 40u);
}

TEST(Smuggling, EveryMalformedRequestIsRejectedAndNeverReachesTheBackend) {
  EchoBackend backend("victim");
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("victim", 80, "", {{"127.0.0.1", backend.port()}}) + "---\n" +
                          ingressYaml("a", {}, "victim", "80"));
  Agent agent(dir.path());
  for (const auto& file : corpus()) {
    SCOPED_TRACE(file.filename().string());
    const std::size_t before = backend.requestsSeen();
    Connection c(agent.port());
    ASSERT_GE(c.fd(), 0);
    c.send(slurp(file));
    auto r = c.read(false, 5s);
    if (r) {
      EXPECT_GE(r->status, 400);
      EXPECT_LT(r->status, 500);
      EXPECT_TRUE(r->closed) << "a rejected request must close the connection";
    }
    EXPECT_TRUE(c.waitClosed(5s));
    EXPECT_EQ(backend.requestsSeen(), before) << "the backend saw a request";
  }
  // The agent is still healthy after the whole corpus.
  auto ok = request(agent.port(), "GET", "x", "/fine");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(Smuggling, ConnectionHeaderCannotStripFramingFields) {
  EchoBackend backend("victim");
  TempDir dir;
  dir.write("a.yaml", ingressClassYaml() + "---\n" +
                          serviceYaml("victim", 80, "", {{"127.0.0.1", backend.port()}}) + "---\n" +
                          ingressYaml("a", {}, "victim", "80"));
  Agent agent(dir.path(), {{}, 1});
  // If "Connection: content-length" removed the length, the upstream would read the body as a
  // second request that never went through routing.
  const std::string hidden = "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
  Connection c(agent.port());
  ASSERT_TRUE(
      c.send("POST /form HTTP/1.1\r\nHost: a\r\nConnection: content-length, host\r\n"
             "Content-Length: " +
             std::to_string(hidden.size()) + "\r\n\r\n" + hidden));
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto v = r->json().as_object();
  EXPECT_EQ(v.at("path").as_string(), "/form");
  EXPECT_EQ(v.at("body_bytes").to_number<std::size_t>(), hidden.size());
  bool saw_host = false;
  for (const auto& kv : v.at("headers").as_array()) {
    saw_host |= kv.as_array()[0].as_string() == "Host";
  }
  EXPECT_TRUE(saw_host) << "Host must survive a Connection header naming it";
  // A follow-up on the same pooled upstream connection gets its own response, not /admin's.
  ASSERT_TRUE(c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto next = c.read();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->json().as_object().at("path").as_string(), "/next");
  EXPECT_EQ(backend.requestsSeen(), 2u);
}

}  // namespace
}  // namespace sluice::test
