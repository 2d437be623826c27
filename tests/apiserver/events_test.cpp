// Warning Events against the fake API server (which validates an Event as kube-apiserver 1.20
// does): the source feeds a Reconciler, whose warnings go to an EventRecorder as the agent wires
// them. An Ingress with a bad rule gets one Event with its reason and uid; a warning that stays
// is not written again, one that comes back is; nothing is written while not leading; a failed
// write is counted and retried; the rate limit drops and counts.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "admin/metrics.hpp"
#include "control/event_recorder.hpp"
#include "control/reconciler.hpp"
#include "fake.hpp"
#include "k8s/api/source.hpp"

namespace sluice::k8s::api {
namespace {

using control::EventRecorder;
using control::EventRecorderOptions;
using control::EventRecorderStats;
using ::testing::HasSubstr;

namespace json = boost::json;
using namespace std::chrono_literals;
using test::eventually;
using test::FakeApiServer;

// An Ingress in namespace web with one rule for NAME.example per path, all to Service web:80.
std::string ingress(const std::string& name, const std::string& cls,
                    const std::vector<std::string>& paths) {
  std::string rules;
  for (const std::string& p : paths) {
    rules += std::string(rules.empty() ? "" : ",") + R"({"path":")" + p +
             R"(","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}})";
  }
  return R"({"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":")" + name +
         R"(","namespace":"web"},"spec":{"ingressClassName":")" + cls + R"(","rules":[{"host":")" +
         name + R"(.example","http":{"paths":[)" + rules + "]}}]}}";
}

constexpr const char* kClass =
    R"({"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":"sluice"},)"
    R"("spec":{"controller":"sluice.dev/ingress"}})";
constexpr const char* kOtherClass =
    R"({"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":"other"},)"
    R"("spec":{"controller":"example.com/other"}})";
constexpr const char* kService =
    R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"web"},)"
    R"("spec":{"ports":[{"port":80}]}})";

class Events : public ::testing::Test {
protected:
  Events() {
    test::writeFileAtomic(fake_.dir() / "client-token", "token-1\n");
    fake_.apply(kClass);
    fake_.apply(kOtherClass);
    fake_.apply(kService);
  }
  ~Events() override {
    io_.run([&] {
      if (recorder_) {
        recorder_->stop();
      }
      if (source_) {
        source_->stop();
      }
      for (auto& c : clients_) {
        c->shutdown();
      }
    });
    EXPECT_TRUE(io_.windDown(10s)) << "coroutines still running after stop()";
  }

  std::shared_ptr<Client> newClient() {
    ClientOptions options;
    options.connect_timeout = 2s;
    options.request_timeout = 5s;
    auto made = Client::create(io_.executor(),
                               test::fakeConnection(fake_, fake_.dir() / "client-token"), options);
    EXPECT_OK(made);
    clients_.push_back(*made);
    return *made;
  }

  // The agent's wiring: every change of a synced store is reconciled, and the reconciler's
  // warnings go to the recorder.
  void start(EventRecorderOptions options = {}) {
    ApiSourceOptions source_options;
    source_options.quiet = 20ms;
    source_options.informer.backoff_initial = 50ms;
    source_ = std::make_unique<ApiSource>(newClient(), source_options);
    options.reporting_instance = "agent-a_0123abcd";
    recorder_ = std::make_shared<EventRecorder>(newClient(), source_->store(), std::move(options),
                                                [this] { return leader_.load(); });
    io_.run([&] {
      recorder_->start();
      source_->start([this] {
        if (source_->ready()) {
          reconciler_.apply(source_->store(), source_->problems());
          recorder_->observe(reconciler_.warnings());
        }
      });
    });
    ASSERT_TRUE(eventually([&] { return io_.run([&] { return source_->ready(); }); }));
  }

  // The Events the fake holds about web/NAME.
  std::vector<json::object> eventsAbout(const std::string& name) {
    std::vector<json::object> out;
    const json::value all = fake_.objects();
    for (const json::value& o : all.at("items").as_array()) {
      if (o.at("kind").as_string() == "Event" && o.at("regarding").at("name").as_string() == name) {
        out.push_back(o.as_object());
      }
    }
    return out;
  }
  std::string uidOf(const std::string& name) {
    const json::value all = fake_.objects();
    for (const json::value& o : all.at("items").as_array()) {
      if (o.at("kind").as_string() == "Ingress" &&
          o.at("metadata").at("name").as_string() == name) {
        return std::string(o.at("metadata").at("uid").as_string());
      }
    }
    return "";
  }
  std::size_t eventPosts() {
    std::size_t n = 0;
    const json::value reqs = fake_.requests();
    for (const json::value& r : reqs.as_array()) {
      n += r.at("method").as_string() == "POST" &&
                   std::string_view(r.at("path").as_string()).ends_with("/events")
               ? 1
               : 0;
    }
    return n;
  }
  EventRecorderStats stats() {
    return io_.run([&] { return recorder_->stats(); });
  }
  // Any change makes the source reconcile again with the same warnings.
  void touchService(int i) {
    fake_.apply(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":)"
                R"("web","annotations":{"touch":")" +
                std::to_string(i) + R"("}},"spec":{"ports":[{"port":80}]}})");
  }

  FakeApiServer fake_;
  test::IoThread io_;
  std::vector<std::shared_ptr<Client>> clients_;
  proxy::SnapshotHolder snapshots_;
  control::Reconciler reconciler_{{}, snapshots_};
  std::unique_ptr<ApiSource> source_;
  std::shared_ptr<EventRecorder> recorder_;
  std::atomic<bool> leader_{true};
};

TEST_F(Events, ABadRuleBecomesAWarningEventOnTheIngress) {
  fake_.apply(ingress("bad", "sluice", {"/", "/a%zz"}));
  fake_.apply(ingress("theirs", "other", {"/b%zz"}));  // another controller's: not ours to judge
  start();
  ASSERT_TRUE(eventually([&] { return eventsAbout("bad").size() == 1; }));
  const json::object e = eventsAbout("bad").front();
  EXPECT_EQ(e.at("apiVersion").as_string(), "events.k8s.io/v1");
  EXPECT_EQ(e.at("type").as_string(), "Warning");
  EXPECT_EQ(e.at("reason").as_string(), "InvalidPath");
  EXPECT_EQ(e.at("reportingController").as_string(), "sluice.dev/ingress-agent");
  EXPECT_EQ(e.at("reportingInstance").as_string(), "agent-a_0123abcd");
  EXPECT_EQ(e.at("metadata").at("namespace").as_string(), "web");
  EXPECT_THAT(std::string(e.at("note").as_string()),
              HasSubstr("path \"/a%zz\" has a '%' that is not followed by two hex digits"));
  const json::object& regarding = e.at("regarding").as_object();
  EXPECT_EQ(regarding.at("kind").as_string(), "Ingress");
  EXPECT_EQ(regarding.at("apiVersion").as_string(), "networking.k8s.io/v1");
  EXPECT_EQ(regarding.at("namespace").as_string(), "web");
  EXPECT_EQ(regarding.at("uid").as_string(), uidOf("bad"));
  std::this_thread::sleep_for(300ms);
  EXPECT_THAT(eventsAbout("theirs"), ::testing::IsEmpty());
  EXPECT_TRUE(eventually([&] { return stats().written == 1u; })) << stats().written;
}

TEST_F(Events, WrittenOnceWhileItHoldsAndAgainWhenItComesBack) {
  fake_.apply(ingress("bad", "sluice", {"/", "/a%zz"}));
  start();
  ASSERT_TRUE(eventually([&] { return eventsAbout("bad").size() == 1; }));
  for (int i = 0; i < 3; ++i) {
    touchService(i);
  }
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(eventsAbout("bad").size(), 1u) << "the same warning was written twice";
  // Fixed, then broken again: a new Event.
  fake_.apply(ingress("bad", "sluice", {"/"}));
  std::this_thread::sleep_for(300ms);
  fake_.apply(ingress("bad", "sluice", {"/", "/a%zz"}));
  ASSERT_TRUE(eventually([&] { return eventsAbout("bad").size() == 2; }));
  EXPECT_TRUE(eventually([&] { return stats().written == 2u; })) << stats().written;
}

TEST_F(Events, NothingWhileNotLeadingThenWrittenOnLeadership) {
  leader_ = false;
  fake_.apply(ingress("bad", "sluice", {"/", "/a%zz"}));
  start();
  touchService(1);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(eventPosts(), 0u);
  leader_ = true;
  io_.run([&] { recorder_->kick(); });  // IngressStatus kicks on gaining leadership
  ASSERT_TRUE(eventually([&] { return eventsAbout("bad").size() == 1; }));
}

TEST_F(Events, AFailedWriteIsCountedAndTriedAgain) {
  fake_.fault(R"({"write_conflict": {"events": 1}})");
  fake_.apply(ingress("bad", "sluice", {"/", "/a%zz"}));
  start();
  ASSERT_TRUE(eventually([&] { return stats().errors == 1; }));
  EXPECT_THAT(stats().last_error, HasSubstr("409"));
  EXPECT_THAT(eventsAbout("bad"), ::testing::IsEmpty());
  touchService(1);  // the next reconcile still sees the warning
  ASSERT_TRUE(eventually([&] { return eventsAbout("bad").size() == 1; }));
  // The server stores the Event a moment before the recorder reads its answer.
  EXPECT_TRUE(eventually([&] { return stats().written == 1u; })) << stats().written;
  EXPECT_EQ(stats().last_error, "");
}

TEST_F(Events, OverTheRateIsDroppedAndCounted) {
  fake_.apply(ingress("bad", "sluice", {"/", "/a%zz", "/b%zz", "/c%zz", "/d%zz"}));
  EventRecorderOptions options;
  options.throttle.burst = 2;
  options.throttle.refill = 1h;
  start(std::move(options));
  ASSERT_TRUE(eventually([&] { return stats().written == 2; }));
  touchService(1);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(eventsAbout("bad").size(), 2u);
  EXPECT_EQ(stats().rate_limited, 2u);
  admin::MetricsWriter out;
  io_.run([&] { recorder_->renderMetrics(out); });
  EXPECT_THAT(out.text(), HasSubstr("sluice_events_written_total 2\n"));
  EXPECT_THAT(out.text(), HasSubstr("sluice_events_dropped_total{reason=\"rate_limit\"} 2\n"));
  EXPECT_THAT(out.text(), HasSubstr("sluice_events_dropped_total{reason=\"error\"} 0\n"));
}

}  // namespace
}  // namespace sluice::k8s::api
