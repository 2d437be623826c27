// ApiSource and its informers against the fake API server. The rule for every test: the store
// converges to exactly the objects the fake holds (filtered as the source filters them), with
// each object at the fake's resourceVersion, except where a test names a bad object.
#include "k8s/api/source.hpp"

#include <future>
#include <map>
#include <optional>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include "fake.hpp"

namespace sluice::k8s::api {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using test::eventually;
using test::FakeApiServer;
using test::writeFileAtomic;
using ::testing::HasSubstr;

// ---- objects ----

std::string ingress(const std::string& ns, const std::string& name, const std::string& host,
                    const std::string& path_type = "Prefix") {
  return R"({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":")" + name +
         R"(","namespace":")" + ns +
         R"("},"spec":{"ingressClassName":"sluice","rules":[{"host":")" + host +
         R"(","http":{"paths":[{"path":"/","pathType":")" + path_type +
         R"(","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}})";
}
std::string service(const std::string& ns, const std::string& name, int port = 80) {
  return R"({"apiVersion":"v1","kind":"Service","metadata":{"name":")" + name +
         R"(","namespace":")" + ns + R"("},"spec":{"ports":[{"port":)" + std::to_string(port) +
         R"(}]}})";
}
std::string slice(const std::string& version, const std::string& ns, const std::string& name,
                  const std::string& ip) {
  return R"({"apiVersion":"discovery.k8s.io/)" + version +
         R"(","kind":"EndpointSlice","metadata":{"name":")" + name + R"(","namespace":")" + ns +
         R"(","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4",)"
         R"("endpoints":[{"addresses":[")" +
         ip + R"("],"conditions":{"ready":true}}],"ports":[{"name":"","port":8080}]})";
}
std::string secret(const std::string& ns, const std::string& name, const std::string& type) {
  return R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":")" + name +
         R"(","namespace":")" + ns + R"("},"type":")" + type +
         R"(","data":{"tls.crt":"Y2VydA==","tls.key":"a2V5"}})";
}
std::string ingressClass(const std::string& name) {
  return R"({"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":")" +
         name + R"("},"spec":{"controller":"sluice.dev/ingress"}})";
}
std::string configMap(const std::string& ns, const std::string& name) {
  return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
         R"(","namespace":")" + ns + R"("},"data":{"9000":"default/web:80"}})";
}

// "Kind ns/name" → resourceVersion
using Snapshot = std::map<std::string, std::string>;

template <class M>
void addAll(Snapshot& out, const char* kind, const M& map) {
  for (const auto& [key, obj] : map) {
    out[std::string(kind) + " " + key] = obj.metadata.resource_version;
  }
}

Snapshot snapshotOf(const Store& store) {
  Snapshot s;
  addAll(s, "Ingress", store.ingresses());
  addAll(s, "IngressClass", store.ingressClasses());
  addAll(s, "Service", store.services());
  addAll(s, "EndpointSlice", store.endpointSlices());
  addAll(s, "Secret", store.secrets());
  addAll(s, "ConfigMap", store.configMaps());
  return s;
}

std::string dump(const Snapshot& s) {
  std::string out;
  for (const auto& [k, v] : s) {
    out += "  " + k + " @" + v + "\n";
  }
  return out;
}

class ApiSourceTest : public ::testing::Test {
protected:
  explicit ApiSourceTest(const std::string& slice_versions = "v1,v1beta1") : fake_(slice_versions) {
    writeFileAtomic(clientTokenFile(), "token-1\n");
    options_.tcp_services = "ingress/tcp-services";
    options_.informer.backoff_initial = 50ms;
    options_.informer.backoff_max = 1s;
    options_.informer.healthy_watch = 1s;
    client_options_.connect_timeout = 5s;
    client_options_.request_timeout = 5s;
  }

  ~ApiSourceTest() override { shutdown(); }

  // Runs `f` on the control thread and returns its result.
  template <class F>
  auto onIo(F&& f) {
    return io_.run(std::forward<F>(f));
  }

  std::filesystem::path clientTokenFile() const { return fake_.dir() / "client-token"; }

  void startSource() {
    auto made = Client::create(io_.executor(), test::fakeConnection(fake_, clientTokenFile()),
                               client_options_);
    ASSERT_OK(made);
    source_ = std::make_unique<ApiSource>(*made, options_);
    onIo([&] { source_->start([this] { ++notifications_; }); });
  }

  void shutdown() {
    if (source_) {
      onIo([&] { source_->stop(); });
    }
    // Everything ends by itself after stop(); the deadline only keeps a bug from hanging ctest.
    EXPECT_TRUE(io_.windDown(10s)) << "the source did not wind down after stop()";
  }

  bool synced() {
    return onIo([&] { return source_->ready(); });
  }
  Snapshot stored() {
    return onIo([&] { return snapshotOf(source_->store()); });
  }
  std::vector<Problem> warnings() {
    return onIo([&] { return source_->problems(); });
  }
  InformerStats statsOf(const std::string& kind) {
    return onIo([&] {
      for (auto& k : source_->stats().kinds) {
        if (k.kind == kind) {
          return k.stats;
        }
      }
      return InformerStats{};
    });
  }
  std::uint64_t total(std::uint64_t InformerStats::*field) {
    return onIo([&] {
      std::uint64_t n = 0;
      for (auto& k : source_->stats().kinds) {
        n += k.stats.*field;
      }
      return n;
    });
  }

  // What the store should hold: the fake's objects as the source selects them.
  Snapshot expected(const std::map<std::string, std::optional<std::string>>& overrides = {}) {
    Snapshot s;
    json::value all = fake_.objects();
    for (const json::value& o : all.at("items").as_array()) {
      const std::string kind(o.at("kind").as_string());
      const json::object& meta = o.at("metadata").as_object();
      const std::string name(meta.at("name").as_string());
      const std::string ns =
          meta.contains("namespace") ? std::string(meta.at("namespace").as_string()) : "";
      if (kind == "Lease") {
        continue;
      }
      if (kind == "Secret" &&
          (!o.as_object().contains("type") || o.at("type").as_string() != "kubernetes.io/tls")) {
        continue;
      }
      if (kind == "ConfigMap" && ns + "/" + name != options_.tcp_services) {
        continue;
      }
      if (!options_.ns.empty() && kind != "IngressClass" && kind != "ConfigMap" &&
          ns != options_.ns) {
        continue;
      }
      const std::string key = kind + " " + (ns.empty() ? name : ns + "/" + name);
      s[key] = std::string(meta.at("resourceVersion").as_string());
    }
    for (const auto& [key, rv] : overrides) {
      if (rv) {
        s[key] = *rv;
      } else {
        s.erase(key);
      }
    }
    return s;
  }

  // Waits until the store equals expected(overrides); on failure prints both.
  void expectConverged(const std::map<std::string, std::optional<std::string>>& overrides = {},
                       std::chrono::milliseconds timeout = 20s) {
    Snapshot want;
    Snapshot have;
    const bool ok = eventually(
        [&] {
          want = expected(overrides);
          have = stored();
          return want == have;
        },
        timeout);
    EXPECT_TRUE(ok) << "store did not converge\nwant:\n" << dump(want) << "have:\n" << dump(have);
  }

  void waitSynced() {
    ASSERT_TRUE(eventually([&] { return synced(); })) << "never synced";
  }

  // Watch requests for `plural` seen by the fake, in order: their resourceVersion parameters.
  std::vector<std::string> watchVersions(const std::string& plural) {
    std::vector<std::string> out;
    const json::value reqs = fake_.requests();
    for (const json::value& r : reqs.as_array()) {
      const json::object& q = r.at("query").as_object();
      const std::string path(r.at("path").as_string());
      if (q.contains("watch") && path.ends_with("/" + plural)) {
        out.emplace_back(q.at("resourceVersion").as_string());
      }
    }
    return out;
  }

  void seed() {
    fake_.apply(ingressClass("sluice"));
    fake_.apply(ingressClass("other"));
    for (int i = 0; i < 7; ++i) {
      fake_.apply(ingress(i % 2 ? "a" : "b", "ing" + std::to_string(i),
                          "h" + std::to_string(i) + ".example"));
    }
    for (int i = 0; i < 5; ++i) {
      fake_.apply(service(i % 2 ? "a" : "b", "svc" + std::to_string(i)));
    }
    for (int i = 0; i < 3; ++i) {
      fake_.apply(slice("v1", "a", "web-" + std::to_string(i), "10.0.0." + std::to_string(i + 1)));
    }
    fake_.apply(secret("a", "tls1", "kubernetes.io/tls"));
    fake_.apply(secret("b", "tls2", "kubernetes.io/tls"));
    fake_.apply(secret("a", "opaque", "Opaque"));
    fake_.apply(configMap("ingress", "tcp-services"));
    fake_.apply(configMap("ingress", "unrelated"));
  }

  FakeApiServer fake_;
  test::IoThread io_;
  ApiSourceOptions options_;
  ClientOptions client_options_;
  std::unique_ptr<ApiSource> source_;
  std::atomic<int> notifications_{0};
};

TEST_F(ApiSourceTest, InitialSyncWithPagination) {
  seed();
  fake_.fault(R"({"page_size": 2})");
  startSource();
  waitSynced();
  expectConverged();
  const Snapshot have = stored();
  EXPECT_EQ(have.size(), 2u + 7 + 5 + 3 + 2 + 1) << dump(have);
  EXPECT_FALSE(have.contains("Secret a/opaque"));
  EXPECT_FALSE(have.contains("ConfigMap ingress/unrelated"));
  int continued = 0;
  const json::value reqs = fake_.requests();
  for (const json::value& r : reqs.as_array()) {
    const json::object& q = r.at("query").as_object();
    if (r.at("path").as_string() == "/apis/networking.k8s.io/v1/ingresses") {
      if (q.contains("continue")) {
        ++continued;
      }
      if (!q.contains("watch")) {
        EXPECT_EQ(q.at("limit").as_string(), "500");
      }
    }
    if (r.at("path").as_string() == "/api/v1/secrets") {
      EXPECT_EQ(q.at("fieldSelector").as_string(), "type=kubernetes.io/tls");
    }
    if (r.at("path").as_string() == "/api/v1/namespaces/ingress/configmaps") {
      EXPECT_EQ(q.at("fieldSelector").as_string(), "metadata.name=tcp-services");
    }
  }
  EXPECT_EQ(continued, 3);  // 7 ingresses in pages of 2
  const InformerStats ing = statsOf("Ingress");
  EXPECT_TRUE(ing.synced);
  EXPECT_EQ(ing.lists, 1u);
  EXPECT_EQ(ing.relists, 0u);
  EXPECT_NE(ing.last_sync, std::chrono::system_clock::time_point{});
  EXPECT_TRUE(warnings().empty());
  EXPECT_TRUE(eventually([&] { return notifications_.load() >= 1; }));
}

TEST_F(ApiSourceTest, ReadyOnlyAfterEveryInformerSynced) {
  seed();
  fake_.fault(R"({"list_status": {"services": 500}})");
  startSource();
  ASSERT_TRUE(eventually([&] {
    return statsOf("Ingress").synced && statsOf("EndpointSlice").synced &&
           statsOf("Service").failures >= 2;
  }));
  EXPECT_FALSE(synced());
  bool warned = false;
  for (const auto& w : warnings()) {
    warned |= w.message.find("list services: 500") != std::string::npos;
  }
  EXPECT_TRUE(warned);
  fake_.fault(R"({"list_status": null})");
  waitSynced();
  expectConverged();
  EXPECT_TRUE(eventually([&] { return warnings().empty(); }));
}

// RBAC that forbids Secrets must not keep the agent unready forever: it reports the refusal and
// serves (TLS hosts then use the default certificate). A 403 on anything else still waits.
TEST_F(ApiSourceTest, ForbiddenSecretsAreReportedAndDoNotBlockReadiness) {
  seed();
  fake_.fault(R"({"list_status": {"secrets": 403}})");
  startSource();
  ASSERT_TRUE(eventually([&] { return synced(); }));
  EXPECT_FALSE(statsOf("Secret").synced);
  bool warned = false;
  for (const auto& w : warnings()) {
    warned |= w.message.find("list secrets: 403") != std::string::npos;
  }
  EXPECT_TRUE(warned);
  fake_.fault(R"({"list_status": null})");
  EXPECT_TRUE(eventually([&] { return statsOf("Secret").synced; }));
}

TEST_F(ApiSourceTest, ForbiddenServicesStillBlockReadiness) {
  seed();
  fake_.fault(R"({"list_status": {"services": 403}})");
  startSource();
  ASSERT_TRUE(eventually([&] { return statsOf("Service").failures >= 2; }));
  EXPECT_FALSE(synced());
  fake_.fault(R"({"list_status": null})");
  waitSynced();
}

TEST_F(ApiSourceTest, AddsUpdatesAndDeletesConverge) {
  seed();
  startSource();
  waitSynced();
  expectConverged();
  const int before = notifications_.load();
  for (int i = 0; i < 20; ++i) {
    fake_.apply(service("a", "burst" + std::to_string(i)));
  }
  fake_.apply(ingress("a", "ing1", "changed.example"));
  fake_.apply(slice("v1", "a", "web-0", "10.0.9.9"));
  fake_.remove("Ingress", "b", "ing0");
  fake_.remove("Secret", "a", "tls1");
  fake_.apply(secret("a", "tls3", "kubernetes.io/tls"));
  fake_.apply(secret("a", "opaque2", "Opaque"));
  fake_.apply(ingressClass("third"));
  fake_.remove("IngressClass", "", "other");
  expectConverged();
  EXPECT_FALSE(stored().contains("Ingress b/ing0"));
  // A burst is coalesced: far fewer rebuilds than events.
  EXPECT_TRUE(eventually([&] { return notifications_.load() > before; }));
  EXPECT_LE(notifications_.load() - before, 10);
  const std::string host =
      onIo([&] { return source_->store().ingresses().at("a/ing1").rules.at(0).host; });
  EXPECT_EQ(host, "changed.example");
  EXPECT_GE(statsOf("Service").added, 20u);
  EXPECT_GE(statsOf("Ingress").deleted, 1u);
}

TEST_F(ApiSourceTest, WatchDroppedMidStreamConverges) {
  seed();
  startSource();
  waitSynced();
  for (int round = 0; round < 5; ++round) {
    const std::string name = "drop" + std::to_string(round);
    fake_.apply(service("b", "round" + std::to_string(round)));
    fake_.apply(ingress("a", name, "d.example"));
    ASSERT_TRUE(eventually([&] { return stored().contains("Ingress a/" + name); }));
    fake_.control("POST", "/drop");  // with changes in flight
    fake_.apply(ingress("a", name, "changed.example"));
    fake_.remove("Service", "b", "round" + std::to_string(round));
  }
  expectConverged();
  EXPECT_GE(statsOf("Ingress").watch_restarts, 5u);
  EXPECT_EQ(total(&InformerStats::relists), 0u);  // re-watch, never relist
  // The re-watch started from where the last one got to, not from the list.
  const auto versions = watchVersions("ingresses");
  ASSERT_GE(versions.size(), 2u);
  EXPECT_NE(versions.front(), versions.back());
}

TEST_F(ApiSourceTest, GoneAsHttpStatusRelists) {
  seed();
  startSource();
  waitSynced();
  ASSERT_TRUE(eventually([&] { return fake_.watchers("ingresses") == 1; }));
  fake_.fault(R"({"watch_status_410": 6})");  // every informer's next watch
  fake_.control("POST", "/drop");
  fake_.apply(ingress("a", "after-gone", "g.example"));
  ASSERT_TRUE(eventually([&] { return total(&InformerStats::relists) >= 6; }));
  expectConverged();
  fake_.apply(service("a", "after-relist"));
  expectConverged();
}

TEST_F(ApiSourceTest, GoneAsErrorEventRelists) {
  seed();
  startSource();
  waitSynced();
  ASSERT_TRUE(eventually([&] { return fake_.watchers("ingresses") == 1; }));
  fake_.fault(R"({"watch_error_410": 6})");
  fake_.control("POST", "/drop");
  ASSERT_TRUE(eventually([&] { return total(&InformerStats::relists) >= 6; }));
  EXPECT_GE(total(&InformerStats::error_events), 6u);
  fake_.remove("Ingress", "a", "ing1");
  expectConverged();
}

TEST_F(ApiSourceTest, RelistAfterCompactionEmitsDeletesForVanishedObjects) {
  seed();
  startSource();
  waitSynced();
  expectConverged();
  ASSERT_TRUE(eventually([&] { return fake_.watchers("ingresses") == 1; }));
  fake_.fault(R"({"stall_watches": true})");  // the watches miss what follows
  fake_.remove("Ingress", "a", "ing1");
  fake_.remove("Service", "a", "svc1");
  fake_.apply(ingress("b", "ing2", "modified.example"));
  fake_.apply(ingress("b", "new", "new.example"));
  fake_.control("POST", "/compact");  // their resourceVersion is now too old
  fake_.fault(R"({"stall_watches": null})");
  fake_.control("POST", "/drop");
  expectConverged();
  EXPECT_FALSE(stored().contains("Ingress a/ing1"));
  EXPECT_FALSE(stored().contains("Service a/svc1"));
  EXPECT_GE(statsOf("Ingress").relists, 1u);
  EXPECT_GE(statsOf("Ingress").deleted, 1u);
  EXPECT_GE(statsOf("Service").relists, 1u);
}

TEST_F(ApiSourceTest, BookmarksAdvanceTheResourceVersion) {
  seed();
  startSource();
  waitSynced();
  ASSERT_TRUE(eventually([&] { return fake_.watchers("ingresses") == 1; }));
  // A change elsewhere moves the global resourceVersion past the ingresses' last event.
  const std::string rv = fake_.apply(service("a", "elsewhere"));
  EXPECT_NE(statsOf("Ingress").resource_version, rv);
  fake_.control("POST", "/bookmark");
  ASSERT_TRUE(eventually([&] { return statsOf("Ingress").resource_version == rv; }));
  EXPECT_GE(statsOf("Ingress").bookmarks, 1u);
  fake_.control("POST", "/requests/clear");
  fake_.control("POST", "/drop");
  ASSERT_TRUE(eventually([&] { return !watchVersions("ingresses").empty(); }));
  EXPECT_EQ(watchVersions("ingresses").front(), rv);
  const json::value reqs = fake_.requests();
  for (const json::value& r : reqs.as_array()) {
    const json::object& q = r.at("query").as_object();
    if (q.contains("watch")) {
      EXPECT_EQ(q.at("allowWatchBookmarks").as_string(), "true");
      const int t = std::stoi(std::string(q.at("timeoutSeconds").as_string()));
      EXPECT_GE(t, 300);
      EXPECT_LE(t, 600);
    }
  }
  expectConverged();
}

TEST_F(ApiSourceTest, MalformedLinesAndObjectsDoNotTakeDownGoodObjects) {
  seed();
  startSource();
  waitSynced();
  ASSERT_TRUE(eventually([&] { return fake_.watchers("ingresses") == 1; }));
  const std::string good_rv = statsOf("Ingress").resource_version;
  const Snapshot before = stored();
  fake_.control("POST", "/malformed",
                R"({"plural":"ingresses","line":"{\"type\":\"ADDED\",\"obj"})");
  fake_.control("POST", "/malformed", R"({"plural":"services","line":"not json at all"})");
  // A bad new object, and a bad update of a good one (which keeps its last good version).
  fake_.apply(ingress("a", "bad-new", "x.example", "Bogus"));
  fake_.apply(ingress("a", "ing1", "y.example", "Bogus"));
  fake_.apply(ingress("a", "good-new", "z.example"));
  fake_.apply(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"bad-svc",)"
              R"("namespace":"a"},"spec":{"ports":[{"port":70000}]}})");
  fake_.apply(service("a", "good-svc"));
  expectConverged({{"Ingress a/bad-new", std::nullopt},
                   {"Ingress a/ing1", before.at("Ingress a/ing1")},
                   {"Service a/bad-svc", std::nullopt}});
  EXPECT_GE(total(&InformerStats::malformed_lines), 2u);
  EXPECT_GE(total(&InformerStats::decode_failures), 3u);
  auto has_warning = [&](const std::string& object) {
    for (const auto& w : warnings()) {
      if (w.object == object) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(has_warning("Ingress a/bad-new"));
  EXPECT_TRUE(has_warning("Ingress a/ing1"));
  EXPECT_TRUE(has_warning("Service a/bad-svc"));
  // A relist keeps the last good version too.
  fake_.fault(R"({"watch_status_410": {"ingresses": 1}})");
  fake_.control("POST", "/drop");
  ASSERT_TRUE(eventually([&] { return statsOf("Ingress").relists >= 1; }));
  expectConverged({{"Ingress a/bad-new", std::nullopt},
                   {"Ingress a/ing1", before.at("Ingress a/ing1")},
                   {"Service a/bad-svc", std::nullopt}});
  EXPECT_TRUE(has_warning("Ingress a/ing1"));
  // Fixed objects come back and their warnings go.
  fake_.apply(ingress("a", "bad-new", "x.example"));
  fake_.apply(ingress("a", "ing1", "y.example"));
  fake_.remove("Service", "a", "bad-svc");
  expectConverged();
  EXPECT_TRUE(eventually([&] { return warnings().empty(); }));
  (void)good_rv;
}

TEST_F(ApiSourceTest, HangingServerTimesOutAndRecovers) {
  seed();
  client_options_.request_timeout = 1s;
  fake_.fault(R"({"hang": ["list"]})");
  startSource();
  ASSERT_TRUE(eventually([&] { return statsOf("Ingress").failures >= 2; }));
  EXPECT_FALSE(synced());
  fake_.fault(R"({"hang": null})");
  waitSynced();
  expectConverged();
  // A watch that hangs before its headers times out too, and the next one recovers.
  fake_.fault(R"({"hang": ["watch"]})");
  fake_.control("POST", "/drop");
  const auto failures = statsOf("Ingress").failures;
  ASSERT_TRUE(eventually([&] { return statsOf("Ingress").failures > failures; }));
  fake_.apply(ingress("b", "while-hung", "h.example"));
  fake_.fault(R"({"hang": null})");
  expectConverged();
}

TEST_F(ApiSourceTest, StalledWatchIsAbandonedAfterIdleTimeout) {
  seed();
  options_.informer.idle_timeout = 1s;
  startSource();
  waitSynced();
  ASSERT_TRUE(eventually([&] { return fake_.watchers("ingresses") == 1; }));
  fake_.fault(R"({"stall_watches": true})");
  fake_.apply(ingress("a", "during-stall", "s.example"));
  fake_.remove("Service", "a", "svc1");
  // A stalled stream delivers nothing: only abandoning it and watching again (which replays
  // from the last resourceVersion) gets the changes in.
  expectConverged();
  EXPECT_GE(statsOf("Ingress").watch_restarts, 1u);
  fake_.fault(R"({"stall_watches": null})");
}

TEST_F(ApiSourceTest, SlowServerStillConverges) {
  seed();
  fake_.fault(R"({"delay_ms": 300, "page_size": 3})");
  startSource();
  waitSynced();
  fake_.apply(ingress("a", "slow", "slow.example"));
  expectConverged();
}

TEST_F(ApiSourceTest, ServerSideWatchTimeoutRewatches) {
  seed();
  fake_.fault(R"({"watch_max_seconds": 1})");
  startSource();
  waitSynced();
  ASSERT_TRUE(eventually([&] { return statsOf("Ingress").watch_restarts >= 2; }));
  fake_.apply(ingress("a", "later", "l.example"));
  expectConverged();
  EXPECT_EQ(statsOf("Ingress").relists, 0u);
  EXPECT_TRUE(warnings().empty());
}

TEST_F(ApiSourceTest, RotatedTokenFileIsUsed) {
  seed();
  startSource();
  waitSynced();
  // The server moves to a new token: requests with the old one get 401.
  writeFileAtomic(fake_.serverTokenFile(), "token-2\n");
  fake_.control("POST", "/drop");
  ASSERT_TRUE(
      eventually([&] { return onIo([&] { return source_->stats().client.unauthorized; }) >= 1; }));
  fake_.apply(ingress("a", "after-rotation", "r.example"));
  // kubelet rotates the projected token on disk; no restart.
  fake_.control("POST", "/requests/clear");
  writeFileAtomic(clientTokenFile(), "token-2\n");
  expectConverged();
  const json::value requests = fake_.requests();
  ASSERT_FALSE(requests.as_array().empty());
  EXPECT_EQ(requests.as_array().back().at("auth").as_string(), "Bearer token-2");
}

TEST_F(ApiSourceTest, NamespaceOptionLimitsTheWatch) {
  seed();
  options_.ns = "a";
  startSource();
  waitSynced();
  expectConverged();
  EXPECT_FALSE(stored().contains("Ingress b/ing0"));
  EXPECT_TRUE(stored().contains("IngressClass sluice"));
  fake_.apply(ingress("b", "ignored", "i.example"));
  fake_.apply(ingress("a", "seen", "s.example"));
  expectConverged();
}

TEST_F(ApiSourceTest, DiscoveryPrefersV1) {
  startSource();
  waitSynced();
  EXPECT_EQ(onIo([&] { return source_->stats().endpoint_slice_version; }), "v1");
}

TEST_F(ApiSourceTest, BadTcpServicesOptionIsAWarning) {
  options_.tcp_services = "no-slash";
  startSource();
  waitSynced();
  ASSERT_EQ(warnings().size(), 1u);
  EXPECT_THAT(warnings()[0].message, HasSubstr("expected namespace/name"));
}

class ApiSourceV1beta1Test : public ApiSourceTest {
protected:
  ApiSourceV1beta1Test() : ApiSourceTest("v1beta1") {}
};

TEST_F(ApiSourceV1beta1Test, DiscoveryFallsBackToV1beta1) {
  fake_.apply(slice("v1beta1", "a", "old-0", "10.1.0.1"));
  fake_.apply(service("a", "web"));
  startSource();
  waitSynced();
  EXPECT_EQ(onIo([&] { return source_->stats().endpoint_slice_version; }), "v1beta1");
  fake_.apply(slice("v1beta1", "a", "old-1", "10.1.0.2"));
  expectConverged();
  const std::string version =
      onIo([&] { return source_->store().endpointSlices().at("a/old-1").api_version; });
  EXPECT_EQ(version, "discovery.k8s.io/v1beta1");
  bool used_v1 = false;
  const json::value reqs = fake_.requests();
  for (const json::value& r : reqs.as_array()) {
    used_v1 |= r.at("path").as_string().starts_with("/apis/discovery.k8s.io/v1/");
  }
  EXPECT_FALSE(used_v1);
}

}  // namespace
}  // namespace sluice::k8s::api
