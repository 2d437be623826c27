// The L4 plan: TCP routes to services, endpoints to backends with stable ids, ready ones in the
// Maglev table, removed ones draining (or freed under reset), IPv6 and local endpoints handled.
#include "lb/l4_plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace sluice::lb {
namespace {

model::DesiredState state(std::vector<model::Endpoint> eps) {
  model::DesiredState s;
  s.tcp_routes = {{5432, "db/pg:5432"}};
  s.clusters = {{"db/pg:5432", model::LbPolicy::kRoundRobin, std::move(eps), {}}};
  return s;
}

L4PlanOptions options(RemovedBackend removed = RemovedBackend::kDrain,
                      std::set<std::string> local = {}) {
  L4PlanOptions o;
  o.table_size = 251;
  o.removed = removed;
  o.local_addresses = std::move(local);
  return o;
}

std::size_t slotsOf(const L4ServicePlan& s, std::uint32_t id) {
  return static_cast<std::size_t>(std::count(s.table.begin(), s.table.end(), id));
}

TEST(L4Plan, ReadyIpv4EndpointsFillTheTable) {
  L4Planner planner(options());
  auto p = planner.plan(state({{"10.0.0.1", 5432, true},
                               {"10.0.0.2", 5432, true},
                               {"fd00::1", 5432, true},
                               {"10.0.0.3", 5432, false}}));
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->services.size(), 1u);
  const auto& s = p->services[0];
  EXPECT_EQ(s.port, 5432);
  EXPECT_EQ(s.ready, 2u);
  EXPECT_EQ(s.skipped_v6, 1u);
  ASSERT_EQ(s.table.size(), 251u);
  ASSERT_EQ(p->backends.size(), 3u);
  for (const auto& [id, b] : p->backends) {
    if (b.address == "10.0.0.3") {
      EXPECT_EQ(b.state, L4BackendState::kDraining);
      EXPECT_EQ(slotsOf(s, id), 0u);
    } else {
      EXPECT_EQ(b.state, L4BackendState::kActive);
      EXPECT_GT(slotsOf(s, id), 100u);
    }
  }
}

TEST(L4Plan, IdsAreStableAndRemovedBackendsDrainUntilUnused) {
  L4Planner planner(options());
  auto a = planner.plan(state({{"10.0.0.1", 80, true}, {"10.0.0.2", 80, true}}));
  ASSERT_TRUE(a.ok());
  std::uint32_t id2 = 0;
  for (const auto& [id, b] : a->backends) {
    id2 = b.address == "10.0.0.2" ? id : id2;
  }
  auto b = planner.plan(state({{"10.0.0.1", 80, true}, {"10.0.0.3", 80, true}}));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->backends.contains(id2));
  EXPECT_EQ(b->backends.at(id2).state, L4BackendState::kDraining);
  EXPECT_EQ(slotsOf(b->services[0], id2), 0u);
  EXPECT_TRUE(b->freed_backends.empty());
  for (const auto& [id, be] : b->backends) {
    EXPECT_FALSE(be.address == "10.0.0.3" && id == id2) << "a draining id is not reused";
  }
  EXPECT_TRUE(planner.releaseDrained({id2}).empty()) << "a flow still uses it";
  EXPECT_EQ(planner.releaseDrained({}), std::vector<std::uint32_t>{id2});
}

TEST(L4Plan, ResetFreesRemovedBackendsAtOnce) {
  L4Planner planner(options(RemovedBackend::kReset));
  ASSERT_TRUE(planner.plan(state({{"10.0.0.1", 80, true}, {"10.0.0.2", 80, true}})).ok());
  auto b = planner.plan(state({{"10.0.0.1", 80, true}}));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->backends.size(), 1u);
  EXPECT_EQ(b->freed_backends.size(), 1u);
}

TEST(L4Plan, LocalBackendsStayInTheTableMarkedLocal) {
  L4Planner planner(options(RemovedBackend::kDrain, {"10.0.0.1"}));
  auto p = planner.plan(state({{"10.0.0.1", 80, true}, {"10.0.0.2", 80, true}}));
  ASSERT_TRUE(p.ok());
  for (const auto& [id, b] : p->backends) {
    EXPECT_EQ(b.state, b.address == "10.0.0.1" ? L4BackendState::kLocal : L4BackendState::kActive);
    EXPECT_GT(slotsOf(p->services[0], id), 100u);
  }
}

TEST(L4Plan, SameEndpointsSameTableOnEveryNode) {
  // Two planners (two nodes) that met the endpoints in different orders and histories.
  L4Planner a(options());
  L4Planner b(options());
  ASSERT_TRUE(b.plan(state({{"10.0.0.9", 80, true}})).ok());  // b's ids are shifted
  auto pa = a.plan(state({{"10.0.0.1", 80, true}, {"10.0.0.2", 80, true}}));
  auto pb = b.plan(state({{"10.0.0.2", 80, true}, {"10.0.0.1", 80, true}}));
  ASSERT_TRUE(pa.ok() && pb.ok());
  for (std::size_t i = 0; i < 251; ++i) {
    EXPECT_EQ(pa->backends.at(pa->services[0].table[i]).address,
              pb->backends.at(pb->services[0].table[i]).address)
        << "slot " << i;
  }
}

TEST(L4Plan, RouteRemovedFreesItsService) {
  L4Planner planner(options());
  ASSERT_TRUE(planner.plan(state({{"10.0.0.1", 80, true}})).ok());
  auto p = planner.plan(model::DesiredState{});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->services.empty());
  EXPECT_EQ(p->freed_services.size(), 1u);
  EXPECT_EQ(p->freed_backends.size(), 1u);
}

}  // namespace
}  // namespace sluice::lb
