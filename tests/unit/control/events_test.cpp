// Warning Events, the pure part: the token bucket and the dedup set on a clock the test drives,
// the throttle that combines them (once per warning while it holds, again after it came back,
// at most a burst and then one per refill), the reason of every warning translate() produces,
// and the Event object (fields, truncation, names).
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "control/events.hpp"
#include "k8s/manifest.hpp"
#include "model/translate.hpp"
#include "support/result.hpp"

namespace sluice::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace json = boost::json;

const Clock::time_point kT0 = Clock::time_point(1000s);

EventKey key(const std::string& uid, const std::string& message = "m") {
  return {uid, "InvalidPath", message};
}

// ---- the token bucket ----

TEST(TokenBucket, BurstThenOnePerPeriod) {
  TokenBucket bucket(3, 2s, kT0);
  EXPECT_TRUE(bucket.take(kT0));
  EXPECT_TRUE(bucket.take(kT0));
  EXPECT_TRUE(bucket.take(kT0));
  EXPECT_FALSE(bucket.take(kT0));
  EXPECT_FALSE(bucket.take(kT0 + 1999ms));
  EXPECT_TRUE(bucket.take(kT0 + 2s));
  EXPECT_FALSE(bucket.take(kT0 + 3s));
  EXPECT_TRUE(bucket.take(kT0 + 4s));  // the partial period before counts
}

TEST(TokenBucket, NeverHoldsMoreThanItsCapacity) {
  TokenBucket bucket(3, 2s, kT0);
  EXPECT_EQ(bucket.available(kT0 + 1h), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(bucket.take(kT0 + 1h));
  }
  EXPECT_FALSE(bucket.take(kT0 + 1h));
  // Full for an hour earned nothing extra; the next token counts from the first take.
  EXPECT_FALSE(bucket.take(kT0 + 1h + 1s));
  EXPECT_TRUE(bucket.take(kT0 + 1h + 2s));
}

TEST(TokenBucket, ThirtyAMinuteSustained) {
  TokenBucket bucket(30, 2s, kT0);
  int taken = 0;
  for (auto t = kT0; t < kT0 + 10min; t += 100ms) {
    taken += bucket.take(t) ? 1 : 0;
  }
  EXPECT_EQ(taken, 30 + 10 * 30 - 1);  // the burst, then one every 2 s (not at the very end)
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  TokenBucket bucket(1, 1s, kT0);
  EXPECT_TRUE(bucket.take(kT0));
  EXPECT_FALSE(bucket.take(kT0 - 10s));
  EXPECT_TRUE(bucket.take(kT0 + 1s));
}

// ---- the dedup set ----

TEST(EventDedup, InsertsOnceAndDropsTheOldestWhenFull) {
  EventDedup dedup(3);
  EXPECT_TRUE(dedup.insert(key("a")));
  EXPECT_FALSE(dedup.insert(key("a")));
  EXPECT_TRUE(dedup.insert(key("b")));
  EXPECT_TRUE(dedup.insert(key("c")));
  EXPECT_FALSE(dedup.insert(key("a")));  // already there: does not become newer
  EXPECT_TRUE(dedup.insert(key("d")));   // full: "a", the oldest, goes
  EXPECT_EQ(dedup.size(), 3u);
  EXPECT_FALSE(dedup.contains(key("a")));
  EXPECT_TRUE(dedup.contains(key("b")));
  EXPECT_TRUE(dedup.insert(key("e")));  // then "b"
  EXPECT_FALSE(dedup.contains(key("b")));
  EXPECT_TRUE(dedup.contains(key("c")));
}

TEST(EventDedup, ReasonAndMessageAreOfTheKey) {
  EventDedup dedup(8);
  EXPECT_TRUE(dedup.insert({"u", "InvalidPath", "m"}));
  EXPECT_TRUE(dedup.insert({"u", "ServiceNotFound", "m"}));
  EXPECT_TRUE(dedup.insert({"u", "InvalidPath", "m2"}));
  EXPECT_TRUE(dedup.insert({"u2", "InvalidPath", "m"}));  // a re-created Ingress: a new uid
  EXPECT_EQ(dedup.size(), 4u);
}

TEST(EventDedup, RetainAndEraseKeepTheOrder) {
  EventDedup dedup(3);
  for (const char* k : {"a", "b", "c"}) {
    dedup.insert(key(k));
  }
  dedup.retainIf([](const EventKey& k) { return k.uid != "b"; });
  EXPECT_EQ(dedup.size(), 2u);
  EXPECT_TRUE(dedup.erase(key("a")));
  EXPECT_FALSE(dedup.erase(key("a")));
  dedup.insert(key("d"));
  dedup.insert(key("e"));  // full with c, d, e
  dedup.insert(key("f"));  // c goes
  EXPECT_FALSE(dedup.contains(key("c")));
  EXPECT_TRUE(dedup.contains(key("d")));
}

// ---- the throttle ----

EventThrottleOptions smallThrottle() {
  EventThrottleOptions o;
  o.dedup_capacity = 16;
  o.burst = 3;
  o.refill = 2s;
  return o;
}

std::vector<EventKey> keys(std::initializer_list<const char*> uids) {
  std::vector<EventKey> out;
  for (const char* u : uids) {
    out.push_back(key(u));
  }
  return out;
}

TEST(EventThrottle, EachWarningOnceWhileItHolds) {
  EventThrottle t(smallThrottle(), kT0);
  EXPECT_THAT(t.observe(keys({"a", "b"}), true, kT0).write, ElementsAre(0, 1));
  EXPECT_THAT(t.observe(keys({"a", "b"}), true, kT0 + 1min).write, IsEmpty());
  // A new one among them, and a duplicate in one pass: written once.
  EXPECT_THAT(t.observe(keys({"a", "c", "c", "b"}), true, kT0 + 2min).write, ElementsAre(1));
}

TEST(EventThrottle, AWarningThatComesBackIsWrittenAgain) {
  EventThrottle t(smallThrottle(), kT0);
  EXPECT_THAT(t.observe(keys({"a"}), true, kT0).write, ElementsAre(0));
  EXPECT_THAT(t.observe(keys({}), true, kT0 + 1s).write, IsEmpty());
  EXPECT_EQ(t.remembered(), 0u);
  EXPECT_THAT(t.observe(keys({"a"}), true, kT0 + 1min).write, ElementsAre(0));
}

TEST(EventThrottle, OverTheRateIsDroppedAndCounted) {
  EventThrottle t(smallThrottle(), kT0);
  auto d = t.observe(keys({"a", "b", "c", "d", "e"}), true, kT0);
  EXPECT_THAT(d.write, ElementsAre(0, 1, 2));
  EXPECT_EQ(d.rate_limited, 2u);
  // Dropped is dropped: not tried again while those warnings hold, even with tokens back.
  d = t.observe(keys({"a", "b", "c", "d", "e"}), true, kT0 + 1h);
  EXPECT_THAT(d.write, IsEmpty());
  EXPECT_EQ(d.rate_limited, 0u);
  // New ones get the tokens that came back: one per 2 s.
  d = t.observe(keys({"a", "f", "g"}), true, kT0 + 1h + 1s);
  EXPECT_EQ(d.write.size(), 2u);
  d = t.observe(keys({"a", "f", "g", "h", "i"}), true, kT0 + 1h + 1s);
  EXPECT_THAT(d.write, ElementsAre(3));
  EXPECT_EQ(d.rate_limited, 1u);
  d = t.observe(keys({"a", "f", "g", "h", "i", "j"}), true, kT0 + 1h + 3s);
  EXPECT_THAT(d.write, ElementsAre(5));
}

TEST(EventThrottle, NotLeadingWritesNothingButForgets) {
  EventThrottle t(smallThrottle(), kT0);
  EXPECT_THAT(t.observe(keys({"a", "b"}), true, kT0).write, ElementsAre(0, 1));
  // Another agent leads: "b" ends, "c" starts; nothing is written or remembered.
  auto d = t.observe(keys({"a", "c"}), false, kT0 + 1s);
  EXPECT_THAT(d.write, IsEmpty());
  EXPECT_EQ(d.rate_limited, 0u);
  EXPECT_EQ(t.remembered(), 1u);
  // Leading again: "a" was written and still holds; "c" and the returned "b" are new to us.
  EXPECT_THAT(t.observe(keys({"a", "b", "c"}), true, kT0 + 1min).write, ElementsAre(1, 2));
}

TEST(EventThrottle, AForgottenEventIsTriedAgain) {
  EventThrottle t(smallThrottle(), kT0);
  EXPECT_THAT(t.observe(keys({"a"}), true, kT0).write, ElementsAre(0));
  t.forget(key("a"));  // the write failed
  EXPECT_THAT(t.observe(keys({"a"}), true, kT0 + 1s).write, ElementsAre(0));
}

TEST(EventThrottle, TheDedupSetIsBounded) {
  EventThrottleOptions o = smallThrottle();
  o.dedup_capacity = 2;
  o.burst = 100;
  EventThrottle t(o, kT0);
  EXPECT_EQ(t.observe(keys({"a", "b", "c"}), true, kT0).write.size(), 3u);
  EXPECT_EQ(t.remembered(), 2u);
  // "a", the oldest, left the full set: b and c are known, a is new again.
  EXPECT_THAT(t.observe(keys({"b", "c"}), true, kT0).write, IsEmpty());
  EXPECT_THAT(t.observe(keys({"b", "c", "a"}), true, kT0).write.front(), 2u);
  EXPECT_EQ(t.remembered(), 2u);
}

// ---- reasons ----

k8s::Store storeFrom(const std::string& yaml) {
  k8s::Store store;
  auto parsed = k8s::parseManifest(yaml, k8s::ManifestFormat::kYaml);
  EXPECT_OK(parsed);
  if (parsed) {
    for (const auto& v : parsed->objects) {
      auto object = k8s::decodeObject(v);
      EXPECT_OK(object);
      if (object) {
        store.upsert(std::move(*object));
      }
    }
  }
  return store;
}

constexpr const char* kEverythingWrong = R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: t}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: t}
spec: {type: ExternalName, externalName: example.com}
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: t}
spec: {ports: [{port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Secret
metadata: {name: opaque, namespace: t}
type: Opaque
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a, namespace: t, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: sluice
  defaultBackend: {service: {name: web, port: {number: 80}}}
  tls: [{secretName: missing}, {secretName: opaque}]
  rules:
  - host: a.test
    http:
      paths:
      - {path: "/x%zz", pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /dup, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /nope, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}
      - {path: /port, pathType: Prefix, backend: {service: {name: web, port: {number: 81}}}}
      - {path: /ext, pathType: Prefix, backend: {service: {name: ext, port: {number: 80}}}}
      - {path: /udp, pathType: Prefix, backend: {service: {name: dns, port: {number: 53}}}}
      - {path: /r, pathType: Prefix, backend: {resource: {kind: Bucket, name: b}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b, namespace: t, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  ingressClassName: sluice
  defaultBackend: {service: {name: web, port: {number: 80}}}
  rules:
  - host: a.test
    http:
      paths:
      - {path: /dup, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
)";

// Every warning translate() gives about an Ingress has a reason of its own (not the fallback):
// a reworded warning fails here, not silently in a cluster.
TEST(EventReason, EveryIngressWarningOfTranslateHasItsReason) {
  const std::string cls =
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: sluice}\n"
      "spec: {controller: sluice.dev/ingress}\n---\n";
  const model::DesiredState s =
      model::translate(storeFrom(cls + kEverythingWrong), model::TranslateOptions{});
  std::set<std::string> reasons;
  for (const auto& w : s.warnings) {
    ASSERT_TRUE(w.object.starts_with("Ingress ")) << w.object;
    const std::string reason(eventReason(w.message));
    EXPECT_NE(reason, "IngressWarning") << w.message;
    reasons.insert(reason);
  }
  EXPECT_EQ(reasons,
            (std::set<std::string>{"InvalidPath", "RuleShadowed", "DefaultBackendShadowed",
                                   "ServiceNotFound", "ServicePortNotFound", "UnsupportedService",
                                   "UnsupportedBackend", "SecretNotFound", "InvalidSecret"}));
  // Without our IngressClass, the Ingresses that name it are told so.
  const model::DesiredState none =
      model::translate(storeFrom(kEverythingWrong), model::TranslateOptions{});
  ASSERT_FALSE(none.warnings.empty());
  for (const auto& w : none.warnings) {
    EXPECT_EQ(eventReason(w.message), "IngressClassNotFound") << w.message;
  }
}

TEST(EventReason, TheAuthorsTextCannotChooseTheReason) {
  // A path that quotes another warning's words is still an invalid path.
  EXPECT_EQ(eventReason("spec.rules[0].http.paths[0].path \"/) is shadowed by x not found\" has "
                        "a '%' that is not followed by two hex digits; rule skipped"),
            "InvalidPath");
  EXPECT_EQ(eventReason("Ingress t/a: spec.rules[0].host: bad (keeping the last good version)"),
            "InvalidIngress");
  EXPECT_EQ(eventReason("something new"), "IngressWarning");
}

// ---- the Event ----

TEST(EventObject, TruncatesOnACharacterBoundary) {
  EXPECT_EQ(truncateUtf8("short", 1024), "short");
  const std::string long_ascii(2000, 'x');
  EXPECT_EQ(truncateUtf8(long_ascii, 1024).size(), 1024u);
  EXPECT_TRUE(truncateUtf8(long_ascii, 1024).ends_with("..."));
  // "é" is two bytes: a cut inside one backs off to before it.
  const std::string accents = std::string(1020, 'x') + "éééé";
  const std::string cut = truncateUtf8(accents, 1024);
  EXPECT_LE(cut.size(), 1024u);
  EXPECT_EQ(cut, std::string(1020, 'x') + "...");
  EXPECT_EQ(truncateUtf8(std::string(1021, 'x') + "éé", 1024), std::string(1021, 'x') + "...");
}

TEST(EventObject, NamesAreUniqueSubdomains) {
  const auto at = std::chrono::system_clock::time_point(std::chrono::nanoseconds(0x1234abcd));
  EXPECT_EQ(eventName("web", at), "web.1234abcd");
  const std::string long_name = std::string(199, 'a') + "-b";  // cut at 200 ends in '-'
  const std::string name = eventName(long_name, at);
  EXPECT_EQ(name, std::string(199, 'a') + ".1234abcd");
  EXPECT_LE(eventName(std::string(253, 'a'), std::chrono::system_clock::now()).size(), 253u);
}

TEST(EventObject, ReportingInstanceIsAQualifiedName) {
  EXPECT_EQ(reportingInstance("node-1_0a1b2c3d"), "node-1_0a1b2c3d");
  EXPECT_EQ(reportingInstance("we ird/host_0a1b2c3d"), "we-ird-host_0a1b2c3d");
  const std::string long_id = std::string(80, 'p') + "_0a1b2c3d";
  EXPECT_EQ(reportingInstance(long_id), std::string(54, 'p') + "_0a1b2c3d");
  EXPECT_EQ(reportingInstance("--"), "sluice");
}

TEST(EventObject, IsAWarningAboutTheIngress) {
  IngressEvent e{"t", "web", "uid-1", "42", "InvalidPath", std::string(3000, 'n')};
  const auto at = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  const json::value v = json::parse(eventJson(e, "agent-1_abc", at));
  EXPECT_EQ(v.at("apiVersion").as_string(), "events.k8s.io/v1");
  EXPECT_EQ(v.at("kind").as_string(), "Event");
  EXPECT_EQ(v.at("metadata").at("namespace").as_string(), "t");
  EXPECT_THAT(std::string(v.at("metadata").at("name").as_string()), ::testing::StartsWith("web."));
  EXPECT_EQ(v.at("type").as_string(), "Warning");
  EXPECT_EQ(v.at("reason").as_string(), "InvalidPath");
  EXPECT_EQ(v.at("action").as_string(), "Translate");
  EXPECT_EQ(v.at("reportingController").as_string(), "sluice.dev/ingress-agent");
  EXPECT_EQ(v.at("reportingInstance").as_string(), "agent-1_abc");
  EXPECT_EQ(v.at("eventTime").as_string(), "2023-11-14T22:13:20.000000Z");
  EXPECT_EQ(v.at("note").as_string().size(), kEventNoteMax);
  const json::object& r = v.at("regarding").as_object();
  EXPECT_EQ(r.at("apiVersion").as_string(), "networking.k8s.io/v1");
  EXPECT_EQ(r.at("kind").as_string(), "Ingress");
  EXPECT_EQ(r.at("namespace").as_string(), "t");
  EXPECT_EQ(r.at("name").as_string(), "web");
  EXPECT_EQ(r.at("uid").as_string(), "uid-1");
  EXPECT_EQ(r.at("resourceVersion").as_string(), "42");
}

}  // namespace
}  // namespace sluice::control
