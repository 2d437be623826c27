#include "lb/balancer.hpp"

#include <map>
#include <set>

#include <gtest/gtest.h>

namespace sluice::lb {
namespace {

constexpr std::int64_t kNow = 1'000'000'000'000;

std::vector<EndpointPtr> makeEndpoints(Registry& reg, int n) {
  std::vector<EndpointPtr> eps;
  for (int i = 0; i < n; ++i) {
    eps.push_back(reg.endpoint({"10.0.0." + std::to_string(i + 1), 8080, true}));
  }
  return eps;
}

TEST(Balancer, EmptyClusterPicksNothing) {
  Balancer b(model::LbPolicy::kRoundRobin, {});
  Rng rng(1);
  EXPECT_EQ(b.pick(kNow, kNoEndpoint, rng), nullptr);
}

TEST(Balancer, RoundRobinVisitsEveryEndpointEvenly) {
  Registry reg;
  Balancer b(model::LbPolicy::kRoundRobin, makeEndpoints(reg, 5));
  Rng rng(1);
  std::map<std::string, int> hits;
  for (int i = 0; i < 100; ++i) {
    hits[b.pick(kNow, kNoEndpoint, rng)->key()]++;
  }
  ASSERT_EQ(hits.size(), 5u);
  for (const auto& [key, count] : hits) {
    EXPECT_EQ(count, 20) << key;
  }
}

TEST(Balancer, RoundRobinSkipsEjectedAndExcluded) {
  Registry reg;
  auto eps = makeEndpoints(reg, 3);
  Balancer b(model::LbPolicy::kRoundRobin, eps);
  Rng rng(1);
  eps[0]->recordFailure(kNow, EjectionPolicy{});
  for (int i = 0; i < 30; ++i) {
    EndpointState* ep = b.pick(kNow, eps[1]->id(), rng);
    ASSERT_NE(ep, nullptr);
    EXPECT_EQ(ep, eps[2].get());
  }
}

TEST(Balancer, EjectionBacksOffExponentiallyAndExpires) {
  Registry reg;
  auto eps = makeEndpoints(reg, 1);
  EjectionPolicy policy{1'000, 8'000};
  eps[0]->recordFailure(kNow, policy);
  EXPECT_TRUE(eps[0]->ejected(kNow + 999));
  EXPECT_FALSE(eps[0]->ejected(kNow + 1'000));
  eps[0]->recordFailure(kNow, policy);
  EXPECT_EQ(eps[0]->ejectedUntil(), kNow + 2'000);
  eps[0]->recordFailure(kNow, policy);
  eps[0]->recordFailure(kNow, policy);
  eps[0]->recordFailure(kNow, policy);
  EXPECT_EQ(eps[0]->ejectedUntil(), kNow + 8'000);  // capped
  eps[0]->recordSuccess();
  EXPECT_EQ(eps[0]->consecutiveFailures(), 0u);
  eps[0]->recordFailure(kNow, policy);
  EXPECT_EQ(eps[0]->ejectedUntil(), kNow + 1'000);
}

TEST(Balancer, PanicModePicksSoonestReturningWhenAllEjected) {
  Registry reg;
  auto eps = makeEndpoints(reg, 3);
  EjectionPolicy policy{1'000, 100'000};
  for (int i = 0; i < 3; ++i) {
    eps[0]->recordFailure(kNow, policy);
  }
  eps[1]->recordFailure(kNow, policy);  // comes back first
  for (int i = 0; i < 2; ++i) {
    eps[2]->recordFailure(kNow, policy);
  }
  for (auto policy_kind : {model::LbPolicy::kRoundRobin, model::LbPolicy::kLeastRequest}) {
    Balancer b(policy_kind, eps);
    Rng rng(7);
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(b.pick(kNow, kNoEndpoint, rng), eps[1].get());
    }
  }
}

TEST(Balancer, SingleEndpointExcludedGivesNothing) {
  Registry reg;
  auto eps = makeEndpoints(reg, 1);
  Balancer b(model::LbPolicy::kLeastRequest, eps);
  Rng rng(3);
  EXPECT_EQ(b.pick(kNow, eps[0]->id(), rng), nullptr);
  Balancer rr(model::LbPolicy::kRoundRobin, eps);
  EXPECT_EQ(rr.pick(kNow, eps[0]->id(), rng), nullptr);
}

TEST(Balancer, LeastRequestPrefersIdleEndpoints) {
  Registry reg;
  auto eps = makeEndpoints(reg, 4);
  Balancer b(model::LbPolicy::kLeastRequest, eps);
  Rng rng(42);
  // Endpoint 0 is busy: P2C must avoid it whenever it is drawn together with another.
  for (int i = 0; i < 50; ++i) {
    eps[0]->beginRequest();
  }
  std::map<std::uint32_t, int> hits;
  for (int i = 0; i < 3000; ++i) {
    hits[b.pick(kNow, kNoEndpoint, rng)->id()]++;
  }
  EXPECT_EQ(hits[eps[0]->id()], 0);
  for (int i = 1; i < 4; ++i) {
    EXPECT_GT(hits[eps[i]->id()], 700) << i;
  }
}

TEST(Balancer, LeastRequestBalancesUnderLoad) {
  Registry reg;
  auto eps = makeEndpoints(reg, 10);
  Balancer b(model::LbPolicy::kLeastRequest, eps);
  Rng rng(5);
  // Requests that never finish: P2C keeps the spread within a small bound.
  for (int i = 0; i < 1000; ++i) {
    b.pick(kNow, kNoEndpoint, rng)->beginRequest();
  }
  int lo = 1 << 30;
  int hi = 0;
  for (const auto& ep : eps) {
    lo = std::min(lo, ep->active());
    hi = std::max(hi, ep->active());
  }
  EXPECT_LE(hi - lo, 4);
}

TEST(Registry, SameAddressGivesSameStateWhileReferenced) {
  Registry reg;
  auto a = reg.endpoint({"10.0.0.1", 80, true});
  auto b = reg.endpoint({"10.0.0.1", 80, true});
  EXPECT_EQ(a.get(), b.get());
  auto c = reg.endpoint({"10.0.0.1", 81, true});
  EXPECT_NE(a->id(), c->id());
  std::uint32_t old_id = a->id();
  a.reset();
  b.reset();
  reg.prune();
  EXPECT_EQ(reg.size(), 1u);
  auto d = reg.endpoint({"10.0.0.1", 80, true});
  EXPECT_NE(d->id(), old_id);  // ids are never reused: pools keyed by id cannot mix endpoints
}

TEST(Registry, Ipv6KeysAreBracketed) {
  Registry reg;
  EXPECT_EQ(reg.endpoint({"fd00::1", 443, true})->key(), "[fd00::1]:443");
  EXPECT_EQ(reg.endpoint({"10.1.2.3", 80, true})->key(), "10.1.2.3:80");
}

}  // namespace
}  // namespace sluice::lb
