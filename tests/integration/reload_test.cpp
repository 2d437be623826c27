// Live configuration: manifest edits apply within a second, bad input keeps the last good state,
// and snapshot swaps under load fail no request.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace sluice::test {
namespace {

// Polls until `host`/`path` is served by `service` or the time runs out; returns the time taken.
std::chrono::milliseconds waitServed(std::uint16_t port, const std::string& host,
                                     const std::string& path, const std::string& service,
                                     std::chrono::milliseconds limit = 3s) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < limit) {
    if (served(request(port, "GET", host, path)) == service) {
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

TEST(Reload, AddEditDeleteApplyWithinOneSecond) {
  EchoBackend a("svc-a");
  EchoBackend b("svc-b");
  TempDir dir;
  dir.write("base.yaml", ingressClassYaml() + "---\n" +
                             serviceYaml("svc-a", 80, "", {{"127.0.0.1", a.port()}}) + "---\n" +
                             serviceYaml("svc-b", 80, "", {{"127.0.0.1", b.port()}}));
  Agent agent(dir.path());
  EXPECT_EQ(request(agent.port(), "GET", "live.example", "/")->status, 404);

  dir.write("ing.yaml", ingressYaml("live", {{"live.example", {{"/", "Prefix", "svc-a", "80"}}}}));
  EXPECT_LT(waitServed(agent.port(), "live.example", "/", "svc-a"), 1000ms);

  dir.write(
      "ing.yaml",
      ingressYaml("live", {{"live.example",
                            {{"/", "Prefix", "svc-a", "80"}, {"/b", "Prefix", "svc-b", "80"}}}}));
  EXPECT_LT(waitServed(agent.port(), "live.example", "/b/x", "svc-b"), 1000ms);
  EXPECT_EQ(served(request(agent.port(), "GET", "live.example", "/bx")), "svc-a");

  // Endpoint change: svc-a now points at b's pod.
  dir.write("base.yaml", ingressClassYaml() + "---\n" +
                             serviceYaml("svc-a", 80, "", {{"127.0.0.1", b.port()}}) + "---\n" +
                             serviceYaml("svc-b", 80, "", {{"127.0.0.1", b.port()}}));
  EXPECT_LT(waitServed(agent.port(), "live.example", "/", "svc-b"), 1000ms);

  dir.remove("ing.yaml");
  const auto start = std::chrono::steady_clock::now();
  while (request(agent.port(), "GET", "live.example", "/")->status != 404 &&
         std::chrono::steady_clock::now() - start < 3s) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1000ms);
}

TEST(Reload, BadInputIsReportedAndTheLastGoodStateKeepsServing) {
  EchoBackend a("svc-a");
  TempDir dir;
  dir.write("base.yaml",
            ingressClassYaml() + "---\n" + serviceYaml("svc-a", 80, "", {{"127.0.0.1", a.port()}}));
  dir.write("ing.yaml", ingressYaml("good", {{"good.example", {{"/", "Prefix", "svc-a", "80"}}}}));
  Agent agent(dir.path());
  ASSERT_EQ(served(request(agent.port(), "GET", "good.example", "/")), "svc-a");
  const std::uint64_t gen = agent.generation();

  // A file that is not YAML at all: its previous objects stay.
  dir.write("ing.yaml", "this: is: not: yaml: [\n");
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(served(request(agent.port(), "GET", "good.example", "/")), "svc-a");
  auto state = boost::json::parse(httpGet(agent.adminPort(), "/debug/state")).as_object();
  ASSERT_FALSE(state.at("warnings").as_array().empty());
  EXPECT_NE(boost::json::serialize(state.at("warnings")).find("ing.yaml"), std::string::npos);
  EXPECT_EQ(agent.generation(), gen);

  // An invalid object next to a valid one: the valid one applies, the invalid is skipped.
  dir.write("ing.yaml",
            ingressYaml("good", {{"good.example", {{"/", "Prefix", "svc-a", "80"}}}}) + "---\n" +
                ingressYaml("bad", {{"bad.example", {{"no-slash", "Prefix", "svc-a", "80"}}}}) +
                "---\n" + ingressYaml("new", {{"new.example", {{"/", "Prefix", "svc-a", "80"}}}}));
  EXPECT_LT(waitServed(agent.port(), "new.example", "/", "svc-a"), 1000ms);
  EXPECT_EQ(request(agent.port(), "GET", "bad.example", "/")->status, 404);
  std::string metrics = httpGet(agent.adminPort(), "/metrics");
  EXPECT_EQ(metrics.find("sluice_rejected_objects 0"), std::string::npos);
  std::string st = httpGet(agent.adminPort(), "/debug/state");
  EXPECT_NE(st.find("no-slash"), std::string::npos) << st;
}

TEST(Reload, FiftyChangesUnderLoadFailNoRequest) {
  EchoBackend a("svc");
  EchoBackend b("svc");
  TempDir dir;
  auto write_config = [&](int i) {
    // Alternate the endpoint set and add/remove an unrelated Ingress: real snapshot swaps.
    std::vector<Ep> eps = i % 2 ? std::vector<Ep>{{"127.0.0.1", a.port()}}
                                : std::vector<Ep>{{"127.0.0.1", a.port()}, {"127.0.0.1", b.port()}};
    std::string y = ingressClassYaml() + "---\n" + serviceYaml("svc", 80, "", eps) + "---\n" +
                    ingressYaml("main", {{"load.example", {{"/", "Prefix", "svc", "80"}}}});
    if (i % 3 == 0) {
      y += "---\n" +
           ingressYaml("extra-" + std::to_string(i),
                       {{"extra.example", {{"/x" + std::to_string(i), "Exact", "svc", "80"}}}});
    }
    dir.write("all.yaml", y);
  };
  write_config(0);
  Agent agent(dir.path());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&]() {
      while (!stop) {
        Connection c(agent.port());
        for (int i = 0; i < 25 && !stop; ++i) {
          if (!c.send("GET /load HTTP/1.1\r\nHost: load.example\r\n\r\n")) {
            ++failed;
            break;
          }
          auto r = c.read();
          if (r && r->status == 200) {
            ++ok;
          } else {
            ++failed;
            break;
          }
        }
      }
    });
  }
  std::uint64_t gen = agent.generation();
  int applied = 0;
  for (int i = 1; i <= 50; ++i) {
    write_config(i);
    std::uint64_t next = agent.waitGeneration(gen, 3s);
    if (next > gen) {
      ++applied;
    }
    gen = next;
  }
  stop = true;
  for (auto& t : clients) {
    t.join();
  }
  EXPECT_EQ(applied, 50);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 500);
}

}  // namespace
}  // namespace sluice::test
