// The agent with the Kubernetes API as its source: the real ingress-agent binary, given a
// kubeconfig for the fake API server (tests/fakeapi, real-format JSON over HTTPS), routes to real
// echo backends as objects are created, changed and deleted, and converges after faults.
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "harness.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The fake API server in its own process, with its control port and a kubeconfig for it.
class FakeApi {
public:
  FakeApi() {
    proc_.emplace(std::vector<std::string>{"/usr/bin/python3", SLUICE_FAKE_APISERVER, "--dir",
                                           dir_.path().string()},
                  dir_.path() / "fake.log");
    const fs::path ready = dir_.path() / "ready.json";
    const auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline && !fs::exists(ready)) {
      std::this_thread::sleep_for(50ms);
    }
    std::ifstream in(ready);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) {
      throw std::runtime_error("fake API server did not start: " + proc_->output());
    }
    const auto& o = v.as_object();
    control_port_ = static_cast<std::uint16_t>(o.at("control_port").to_number<int>());
    const int port = o.at("port").to_number<int>();
    dir_.write("kubeconfig",
               "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n"
               "  cluster: {server: \"https://127.0.0.1:" +
                   std::to_string(port) + "\", certificate-authority: \"" +
                   std::string(o.at("ca").as_string()) +
                   "\"}\nusers:\n- name: u\n  user: {tokenFile: \"" +
                   std::string(o.at("token_file").as_string()) +
                   "\"}\ncontexts:\n- name: fake\n  context: {cluster: fake, user: u}\n");
  }

  fs::path kubeconfig() const { return dir_.path() / "kubeconfig"; }

  void control(const std::string& path, const std::string& body) {
    auto r =
        request(control_port_, "POST", "fake", path, "Content-Type: application/json\r\n", body);
    ASSERT_TRUE(r && r->status == 200) << path << " " << body << " -> " << served(r);
  }
  void apply(const std::string& object) { control("/apply", object); }
  // Every object the fake holds.
  json::array objects() {
    auto r = request(control_port_, "GET", "fake", "/objects");
    if (!r || r->status != 200) {
      ADD_FAILURE() << "/objects -> " << served(r);
      return {};
    }
    return r->json().at("items").as_array();
  }
  // An object's field as JSON text ("-" if the object or the field is missing).
  std::string field(const std::string& kind, const std::string& name,
                    std::initializer_list<const char*> path) {
    for (const json::value& o : objects()) {
      if (o.at("kind").as_string() != kind || o.at("metadata").at("name").as_string() != name) {
        continue;
      }
      const json::value* v = &o;
      for (const char* key : path) {
        v = v->is_object() ? v->as_object().if_contains(key) : nullptr;
        if (v == nullptr) {
          return "-";
        }
      }
      return json::serialize(*v);
    }
    return "-";
  }
  void remove(const std::string& kind, const std::string& api_version, const std::string& ns,
              const std::string& name) {
    control("/delete", R"({"apiVersion":")" + api_version + R"(","kind":")" + kind +
                           R"(","namespace":")" + ns + R"(","name":")" + name + R"("})");
  }

private:
  TempDir dir_;
  std::optional<Process> proc_;
  std::uint16_t control_port_ = 0;
};

std::string serviceJson(const std::string& name) {
  return R"({"apiVersion":"v1","kind":"Service","metadata":{"name":")" + name +
         R"(","namespace":"default"},"spec":{"ports":[{"name":"http","port":80,)"
         R"("targetPort":8080,"protocol":"TCP"}]}})";
}

// An EndpointSlice for `service` with the given (port, ready) endpoints on 127.0.0.1 aliases:
// every endpoint gets its own address (127.0.0.N) since a slice has one port list.
std::string sliceJson(const std::string& service, std::uint16_t port,
                      const std::vector<std::pair<std::string, bool>>& endpoints) {
  std::string eps;
  for (const auto& [address, ready] : endpoints) {
    if (!eps.empty()) {
      eps += ",";
    }
    eps += R"({"addresses":[")" + address + R"("],"conditions":{"ready":)" +
           (ready ? "true" : "false") + "}}";
  }
  return R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":")" +
         service + R"(-1","namespace":"default","labels":{"kubernetes.io/service-name":")" +
         service + R"("}},"addressType":"IPv4","ports":[{"name":"http","port":)" +
         std::to_string(port) + R"(,"protocol":"TCP"}],"endpoints":[)" + eps + "]}";
}

std::string ingressJson(const std::string& name, const std::string& path,
                        const std::string& service, const std::string& path_type = "Prefix") {
  return R"({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":")" + name +
         R"(","namespace":"default"},"spec":{"ingressClassName":"sluice","rules":[{"host":)"
         R"("demo.local","http":{"paths":[{"path":")" +
         path + R"(","pathType":")" + path_type + R"(","backend":{"service":{"name":")" + service +
         R"(","port":{"name":"http"}}}}]}}]}})";
}

constexpr const char* kClass =
    R"({"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":"sluice"},)"
    R"("spec":{"controller":"sluice.dev/ingress"}})";

// Polls until GET demo.local`path` is answered by `want` ("<404>" for the agent's 404).
bool converges(std::uint16_t port, const std::string& path, const std::string& want,
               std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  std::string last;
  while (Clock::now() < deadline) {
    last = served(request(port, "GET", "demo.local", path));
    if (last == want) {
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  ADD_FAILURE() << "GET " << path << ": wanted " << want << ", last answer " << last;
  return false;
}

class KubeSource : public ::testing::Test {
protected:
  void SetUp() override {
    // Both backends listen on one port number, each on its own loopback address, so one
    // EndpointSlice port serves both.
    const std::uint16_t port = freePort();
    a_.emplace("pod-a", "127.0.0.2", port);
    b_.emplace("pod-b", "127.0.0.3", port);
    port_ = port;
    fake_.apply(kClass);
    fake_.apply(serviceJson("web"));
    fake_.apply(sliceJson("web", port_, {{"127.0.0.2", true}}));
    fake_.apply(ingressJson("web", "/", "web"));
    agent_.emplace(fs::path(),
                   AgentOptions{{"--kubeconfig", fake_.kubeconfig().string(), "--splice=copy",
                                 "--allow-endpoint-cidrs", "127.0.0.0/8"},
                                1});
  }

  FakeApi fake_;
  std::optional<EchoBackend> a_, b_;
  std::optional<Agent> agent_;
  std::uint16_t port_ = 0;
};

TEST_F(KubeSource, RoutesFollowObjectsAsTheyChange) {
  // Ready means synced: the first request already routes.
  EXPECT_EQ(served(request(agent_->port(), "GET", "demo.local", "/")), "pod-a");

  // Endpoint added, then the first one not ready: traffic follows.
  fake_.apply(sliceJson("web", port_, {{"127.0.0.2", true}, {"127.0.0.3", true}}));
  bool saw_b = false;
  for (int i = 0; i < 200 && !saw_b; ++i) {
    saw_b = served(request(agent_->port(), "GET", "demo.local", "/")) == "pod-b";
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(saw_b) << "the added endpoint never served";
  fake_.apply(sliceJson("web", port_, {{"127.0.0.2", false}, {"127.0.0.3", true}}));
  std::this_thread::sleep_for(500ms);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(converges(agent_->port(), "/", "pod-b", 5s));
  }

  // Path edited: / no longer matches, /api does.
  fake_.apply(ingressJson("web", "/api", "web"));
  EXPECT_TRUE(converges(agent_->port(), "/", "<404>"));
  EXPECT_TRUE(converges(agent_->port(), "/api/x", "pod-b"));

  // Deleted.
  fake_.remove("Ingress", "networking.k8s.io/v1", "default", "web");
  EXPECT_TRUE(converges(agent_->port(), "/api/x", "<404>"));
}

TEST_F(KubeSource, ABadObjectNeverTakesDownGoodRoutes) {
  EXPECT_TRUE(converges(agent_->port(), "/", "pod-a"));
  // An Ingress the decoder rejects (pathType not in the API) next to the good one.
  fake_.apply(ingressJson("broken", "/b", "web", "Sometimes"));
  // A garbage watch line on the Ingress stream.
  fake_.control("/malformed", R"({"plural":"ingresses","line":"{not json"})");
  std::this_thread::sleep_for(500ms);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(served(request(agent_->port(), "GET", "demo.local", "/")), "pod-a");
  }
  const std::string state = httpGet(agent_->adminPort(), "/debug/state");
  EXPECT_NE(state.find("broken"), std::string::npos)
      << "no warning names the bad Ingress: " << state;
  // And the source keeps working afterwards.
  fake_.apply(ingressJson("web", "/v2", "web"));
  EXPECT_TRUE(converges(agent_->port(), "/v2/x", "pod-a"));
}

TEST_F(KubeSource, ConvergesAfterDroppedWatchesAnd410) {
  EXPECT_TRUE(converges(agent_->port(), "/", "pod-a"));
  fake_.control("/drop", "{}");
  fake_.apply(ingressJson("web", "/after-drop", "web"));
  EXPECT_TRUE(converges(agent_->port(), "/after-drop", "pod-a"));

  // The next watches answer 410 Gone (as a status, then as an ERROR event): relist.
  fake_.control("/fault", R"({"watch_status_410": 1, "watch_error_410": 1})");
  fake_.control("/drop", "{}");
  fake_.control("/compact", "{}");
  fake_.remove("Ingress", "networking.k8s.io/v1", "default", "web");
  fake_.apply(ingressJson("web2", "/after-410", "web"));
  EXPECT_TRUE(converges(agent_->port(), "/after-410", "pod-a", 20s));
  EXPECT_TRUE(converges(agent_->port(), "/after-drop", "<404>", 20s));
}

// Two agents publish different addresses; only the leader of the Lease writes, only our class's
// Ingresses get status, and on the leader's SIGTERM the other takes over through the released
// Lease and publishes its own address.
TEST_F(KubeSource, StatusIsWrittenByTheLeaderForOurClassOnly) {
  fake_.apply(R"({"apiVersion":"networking.k8s.io/v1","kind":"IngressClass",)"
              R"("metadata":{"name":"other"},"spec":{"controller":"example.com/other"}})");
  std::string theirs = ingressJson("theirs", "/t", "web");
  const std::string ours_class = R"("ingressClassName":"sluice")";
  theirs.replace(theirs.find(ours_class), ours_class.size(), R"("ingressClassName":"other")");
  fake_.apply(theirs);
  std::optional<Agent> agents[2];
  const char* addresses[] = {"192.0.2.1", "192.0.2.2"};
  for (int i = 0; i < 2; ++i) {
    agents[i].emplace(
        fs::path(), AgentOptions{{"--kubeconfig", fake_.kubeconfig().string(), "--splice=copy",
                                  "--allow-endpoint-cidrs", "127.0.0.0/8", "--publish-address",
                                  addresses[i], "--lease-duration", "3s", "--lease-renew-deadline",
                                  "2s", "--lease-retry-period", "250ms"},
                                 1});
  }
  const auto published = [&](const std::string& name) {
    return fake_.field("Ingress", name, {"status", "loadBalancer", "ingress"});
  };
  const auto leaderIndex = [&]() -> int {
    for (int i = 0; i < 2; ++i) {
      auto state = json::parse(httpGet(agents[i]->adminPort(), "/debug/state"));
      if (state.at("ingress_status").at("leader").as_bool()) {
        return i;
      }
    }
    return -1;
  };
  int leader = -1;
  const auto deadline = Clock::now() + 15s;
  while (Clock::now() < deadline) {
    leader = leaderIndex();
    if (leader >= 0 &&
        published("web") == R"([{"ip":")" + std::string(addresses[leader]) + R"("}])") {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_GE(leader, 0) << "no leader: " << agents[0]->output();
  EXPECT_EQ(published("web"), R"([{"ip":")" + std::string(addresses[leader]) + R"("}])");
  EXPECT_EQ(published("theirs"), "-");
  const std::string identity(json::parse(httpGet(agents[leader]->adminPort(), "/debug/state"))
                                 .at("ingress_status")
                                 .at("identity")
                                 .as_string());
  EXPECT_EQ(fake_.field("Lease", "sluice-ingress-leader", {"spec", "holderIdentity"}),
            "\"" + identity + "\"");
  const std::string metrics = httpGet(agents[leader]->adminPort(), "/metrics");
  EXPECT_NE(metrics.find("sluice_k8s_leader 1"), std::string::npos) << metrics;
  // Renewals every 250 ms reuse kept-alive connections instead of a TLS handshake each.
  std::this_thread::sleep_for(1s);
  const auto counter = [&](const std::string& text, const std::string& name) {
    const auto at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + name.size() + 2));
  };
  const std::string later = httpGet(agents[leader]->adminPort(), "/metrics");
  const double requests = counter(later, R"(sluice_k8s_api_requests_total{client="leader"})");
  const double connections = counter(later, R"(sluice_k8s_api_connections_total{client="leader"})");
  EXPECT_GE(requests, 8) << later;
  EXPECT_GE(connections, 1) << later;
  EXPECT_LE(connections, 3) << later;

  // The leader drains; the follower takes the released Lease well before it would expire.
  const int follower = 1 - leader;
  const auto stopped = Clock::now();
  agents[leader]->process().signal(SIGTERM);
  ASSERT_TRUE(agents[leader]->process().wait(10s).has_value());
  const std::string want = R"([{"ip":")" + std::string(addresses[follower]) + R"("}])";
  while (Clock::now() < stopped + 10s && published("web") != want) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(published("web"), want);
  EXPECT_LT(Clock::now() - stopped, 3s) << "waited for the Lease to expire";
  EXPECT_EQ(published("theirs"), "-");
  EXPECT_NE(agents[leader]->output().find("released Lease"), std::string::npos)
      << agents[leader]->output();
}

}  // namespace
}  // namespace sluice::test
