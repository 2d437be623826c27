// The Prometheus writer and the admin pages: families grouped however many components add to
// them, label escaping, histograms, readiness and routing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "admin/metrics.hpp"
#include "admin/pages.hpp"

namespace sluice::admin {
namespace {

using ::testing::HasSubstr;

TEST(MetricsWriter, GroupsEachFamilyUnderOneHelpAndType) {
  MetricsWriter w;
  w.family("a_total", MetricsWriter::Type::kCounter, "A things.");
  w.sample("a_total", {{"client", "source"}}, std::uint64_t{3});
  w.gauge("b", "B now.", -2);
  w.family("a_total", MetricsWriter::Type::kCounter, "A things.");  // a second component
  w.sample("a_total", {{"client", "leader"}}, 5);
  EXPECT_EQ(w.text(),
            "# HELP a_total A things.\n# TYPE a_total counter\n"
            "a_total{client=\"source\"} 3\na_total{client=\"leader\"} 5\n"
            "# HELP b B now.\n# TYPE b gauge\nb -2\n");
}

TEST(MetricsWriter, EscapesLabelValues) {
  MetricsWriter w;
  w.counter("x_total", "X.", 1);
  w.sample("x_total", {{"route", "a\"b\\c\nd"}}, 2);
  EXPECT_THAT(w.text(), HasSubstr("x_total{route=\"a\\\"b\\\\c\\nd\"} 2\n"));
}

TEST(MetricsWriter, HistogramIsCumulativeWithInfSumAndCount) {
  MetricsWriter w;
  w.family("lat_seconds", MetricsWriter::Type::kHistogram, "Latency.");
  const double bounds[] = {0.1, 1};
  const std::uint64_t buckets[] = {2, 3};
  w.histogram("lat_seconds", {{"cluster", "c"}}, bounds, buckets, 6, 4.5);
  EXPECT_EQ(w.text(),
            "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{cluster=\"c\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{cluster=\"c\",le=\"1\"} 5\n"
            "lat_seconds_bucket{cluster=\"c\",le=\"+Inf\"} 6\n"
            "lat_seconds_sum{cluster=\"c\"} 4.5\nlat_seconds_count{cluster=\"c\"} 6\n");
}

TEST(Pages, ServeEveryEndpointFromTheRegisteredRenderers) {
  Pages pages;
  bool ready = false;
  pages.setReadiness([&]() -> std::optional<std::string> {
    return ready ? std::nullopt : std::optional<std::string>("starting");
  });
  pages.addMetrics([](MetricsWriter& w) { w.counter("one_total", "One.", 1); });
  pages.addState([](boost::json::object& o) { o["generation"] = 7; });
  pages.addState([](boost::json::object& o) { o["source"] = "manifests"; });
  EXPECT_EQ(pages.handle("GET", "/healthz").status, 200);
  Response r = pages.handle("GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "starting\n");
  ready = true;
  EXPECT_EQ(pages.handle("GET", "/readyz").status, 200);
  EXPECT_THAT(pages.handle("GET", "/metrics").body, HasSubstr("one_total 1\n"));
  EXPECT_EQ(pages.handle("GET", "/debug/state").body,
            "{\"generation\":7,\"source\":\"manifests\"}");
  EXPECT_EQ(pages.handle("GET", "/debug/flows").body, "[]");
  EXPECT_EQ(pages.handle("POST", "/metrics").status, 405);
  EXPECT_EQ(pages.handle("GET", "/nope").status, 404);
}

}  // namespace
}  // namespace sluice::admin
