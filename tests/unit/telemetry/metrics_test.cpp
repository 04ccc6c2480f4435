#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace llmq::telemetry {
namespace {

TEST(Metrics, ExpositionOfASmallRegistryIsExact) {
  Registry r;
  auto& requests = r.counter("t_requests_total", "Requests.", {"route", "code"});
  requests.with({"/b", "200"}).inc(2);
  requests.with({"/a", "429"}).inc();
  r.gauge("t_temperature", "A gauge.").with({}).set(-1.5);
  r.callback_gauge("t_depth", "Computed at scrape.", [] { return 7.0; }, {"queue"}, {"Q"});
  auto& h = r.histogram("t_latency_seconds", "A histogram.", {0.1, 1}, {"model"});
  h.with({"m"}).observe(0.05);
  h.with({"m"}).observe(0.1);  // on a bound: belongs to that bucket (le is inclusive)
  h.with({"m"}).observe(3);

  const std::string expected =
      "# HELP t_requests_total Requests.\n"
      "# TYPE t_requests_total counter\n"
      "t_requests_total{route=\"/a\",code=\"429\"} 1\n"
      "t_requests_total{route=\"/b\",code=\"200\"} 2\n"
      "# HELP t_temperature A gauge.\n"
      "# TYPE t_temperature gauge\n"
      "t_temperature -1.5\n"
      "# HELP t_depth Computed at scrape.\n"
      "# TYPE t_depth gauge\n"
      "t_depth{queue=\"Q\"} 7\n"
      "# HELP t_latency_seconds A histogram.\n"
      "# TYPE t_latency_seconds histogram\n"
      "t_latency_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
      "t_latency_seconds_bucket{model=\"m\",le=\"1\"} 2\n"
      "t_latency_seconds_bucket{model=\"m\",le=\"+Inf\"} 3\n"
      "t_latency_seconds_sum{model=\"m\"} 3.15\n"
      "t_latency_seconds_count{model=\"m\"} 3\n";
  EXPECT_EQ(r.expose(), expected);
}

TEST(Metrics, FamilyWithoutChildrenStillHasHelpAndType) {
  Registry r;
  r.counter("t_empty_total", "Nothing yet.", {"x"});
  EXPECT_EQ(r.expose(), "# HELP t_empty_total Nothing yet.\n# TYPE t_empty_total counter\n");
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
  EXPECT_EQ(expo::escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(expo::escape_help("x\\y\nz\"q"), "x\\\\y\\nz\"q");  // quotes stay in HELP
  Registry r;
  r.counter("t_total", "Line one\nline two.", {"path"}).with({"/\"x\"\\"}).inc();
  EXPECT_EQ(r.expose(),
            "# HELP t_total Line one\\nline two.\n"
            "# TYPE t_total counter\n"
            "t_total{path=\"/\\\"x\\\"\\\\\"} 1\n");
}

TEST(Metrics, ValuesUseShortestRoundTripAndSpecialNames) {
  EXPECT_EQ(expo::format_value(0.1), "0.1");
  EXPECT_EQ(expo::format_value(3), "3");
  EXPECT_EQ(expo::format_value(1e-7), "1e-07");
  EXPECT_EQ(expo::format_value(INFINITY), "+Inf");
  EXPECT_EQ(expo::format_value(-INFINITY), "-Inf");
  EXPECT_EQ(expo::format_value(NAN), "NaN");
}

TEST(Metrics, HistogramBucketsAreCumulativeAndCountEqualsInf) {
  Histogram h({1, 2, 4});
  for (double v : {0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 4.5, 100.0}) h.observe(v);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{2, 4, 6, 8}));
  EXPECT_EQ(s.count, 8u);
  EXPECT_DOUBLE_EQ(s.sum, 116.5);
}

TEST(Metrics, HistogramRejectsUnsortedBounds) {
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
}

TEST(Metrics, ExponentialBuckets) {
  EXPECT_EQ(exponential_buckets(0.001, 10, 4), (std::vector<double>{0.001, 0.01, 0.1, 1}));
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
  Registry r;
  Counter& c = r.counter("t_total", "c").with({});
  Histogram& h = r.histogram("t_seconds", "h", {1}).with({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        h.observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000);
  EXPECT_EQ(h.snapshot().count, 40000u);
}

TEST(Metrics, SameLabelsGiveTheSameInstrument) {
  Registry r;
  auto& f = r.counter("t_total", "c", {"a"});
  EXPECT_EQ(&f.with({"x"}), &f.with({"x"}));
  EXPECT_NE(&f.with({"x"}), &f.with({"y"}));
}

}  // namespace
}  // namespace llmq::telemetry
