#include "telemetry/window_quantiles.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

namespace llmq::telemetry {
namespace {

using namespace std::chrono_literals;

// The true quantile the sketch's bound is stated for: the floor(q (n-1))-th smallest sample.
double exact_quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(std::floor(q * static_cast<double>(v.size() - 1)))];
}

void expect_within_bound(const std::vector<double>& samples, const DDSketch& sketch,
                         const std::string& what) {
  for (double q : {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    const double truth = exact_quantile(samples, q);
    const double got = sketch.quantile(q);
    // alpha, plus a hair for the floating-point log at bucket edges.
    EXPECT_LE(std::abs(got - truth), 0.01 * truth * (1 + 1e-9))
        << what << " q=" << q << " truth=" << truth << " got=" << got;
  }
}

struct Distribution {
  std::string name;
  std::function<double(std::mt19937_64&)> draw;
};

std::vector<Distribution> distributions() {
  return {
      {"uniform", [](std::mt19937_64& g) { return std::uniform_real_distribution(0.001, 10.0)(g); }},
      {"exponential", [](std::mt19937_64& g) { return std::exponential_distribution(2.0)(g); }},
      // Heavy tail over many decades, like latencies with stragglers.
      {"lognormal", [](std::mt19937_64& g) { return std::lognormal_distribution(0.0, 2.0)(g); }},
      // Two modes far apart: short answers and long completions.
      {"bimodal", [](std::mt19937_64& g) {
         return std::bernoulli_distribution(0.9)(g) ? std::normal_distribution(0.2, 0.02)(g) + 0.1
                                                    : std::normal_distribution(30.0, 5.0)(g) + 10;
       }},
      // Few distinct values: many ties.
      {"discrete", [](std::mt19937_64& g) {
         return 0.05 * (1 + std::uniform_int_distribution(0, 9)(g));
       }},
  };
}

TEST(DDSketch, QuantilesAreWithinOnePercentForSeveralDistributions) {
  for (const Distribution& d : distributions()) {
    for (std::size_t n : {1u, 2u, 7u, 100u, 20000u}) {
      std::mt19937_64 rng(n * 7919 + d.name.size());
      std::vector<double> samples;
      DDSketch sketch(0.01);
      for (std::size_t i = 0; i < n; ++i) {
        samples.push_back(d.draw(rng));
        sketch.add(samples.back());
      }
      expect_within_bound(samples, sketch, d.name + " n=" + std::to_string(n));
    }
  }
}

TEST(DDSketch, MergingKeepsTheBound) {
  std::mt19937_64 rng(7);
  std::vector<double> all;
  DDSketch merged(0.01);
  for (int part = 0; part < 6; ++part) {
    DDSketch s(0.01);
    for (int i = 0; i < 1000; ++i) {
      all.push_back(std::lognormal_distribution(part * 0.5, 1.0)(rng));
      s.add(all.back());
    }
    merged.merge(s);
  }
  EXPECT_EQ(merged.count(), all.size());
  expect_within_bound(all, merged, "merged");
}

TEST(DDSketch, EmptyIsZeroAndClearEmpties) {
  DDSketch s;
  EXPECT_EQ(s.quantile(0.5), 0);
  s.add(3);
  EXPECT_NEAR(s.quantile(0.5), 3, 0.03);
  s.clear();
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.quantile(0.5), 0);
}

// A clock the test moves by hand.
struct FakeClock {
  WindowQuantiles::Clock::time_point t{std::chrono::hours(1)};
  WindowQuantiles::Now now() {
    return [this] { return t; };
  }
};

TEST(WindowQuantiles, OldSamplesAgeOutOfTheWindow) {
  FakeClock clock;
  WindowQuantiles w(60s, 6, 0.01, clock.now());
  for (int i = 0; i < 100; ++i) w.observe(100);  // a slow minute
  clock.t += 30s;
  for (int i = 0; i < 100; ++i) w.observe(1);

  WindowQuantiles::Snapshot s = w.snapshot(kSummaryQuantiles);
  EXPECT_EQ(s.window_count, 200u);
  EXPECT_NEAR(s.values[2], 100, 1);  // p99 still sees the slow samples

  clock.t += 35s;  // the slow samples are now 65 s old: out of the window
  s = w.snapshot(kSummaryQuantiles);
  EXPECT_EQ(s.window_count, 100u);
  EXPECT_NEAR(s.values[2], 1, 0.01);

  clock.t += 60s;  // everything is old
  s = w.snapshot(kSummaryQuantiles);
  EXPECT_EQ(s.window_count, 0u);
  // _sum and _count are since start, as Prometheus summaries expect.
  EXPECT_EQ(s.total_count, 200u);
  EXPECT_DOUBLE_EQ(s.total_sum, 100 * 100 + 100 * 1);
}

TEST(WindowQuantiles, ASampleStaysAtLeastWindowMinusOneSubWindow) {
  FakeClock clock;
  WindowQuantiles w(60s, 6, 0.01, clock.now());
  clock.t += 9999ms;  // the end of a sub-window
  w.observe(5);
  clock.t += 50s;  // 50 s later it is still counted...
  EXPECT_EQ(w.snapshot({0.5}).window_count, 1u);
  clock.t += 1ms;  // ...and gone once its sub-window leaves the ring
  EXPECT_EQ(w.snapshot({0.5}).window_count, 0u);
}

TEST(WindowQuantiles, ReusedRingSlotForgetsItsOldSubWindow) {
  FakeClock clock;
  WindowQuantiles w(60s, 6, 0.01, clock.now());
  w.observe(1000);
  clock.t += 60s;  // same ring slot, next lap
  w.observe(1);
  const WindowQuantiles::Snapshot s = w.snapshot({1.0});
  EXPECT_EQ(s.window_count, 1u);
  EXPECT_NEAR(s.values[0], 1, 0.01);
}

TEST(WindowQuantiles, ExposedAsASummary) {
  Registry r;
  FakeClock clock;
  auto& f = r.add(std::make_unique<Family<WindowQuantiles>>(
      "t_seconds", "Window.", std::vector<std::string>{"model"},
      [&clock] { return std::make_unique<WindowQuantiles>(60s, 6, 0.01, clock.now()); }));
  f.with({"m"});
  EXPECT_EQ(r.expose(),
            "# HELP t_seconds Window.\n"
            "# TYPE t_seconds summary\n"
            "t_seconds{model=\"m\",quantile=\"0.5\"} NaN\n"
            "t_seconds{model=\"m\",quantile=\"0.95\"} NaN\n"
            "t_seconds{model=\"m\",quantile=\"0.99\"} NaN\n"
            "t_seconds_sum{model=\"m\"} 0\n"
            "t_seconds_count{model=\"m\"} 0\n");
  f.with({"m"}).observe(2);
  const std::string text = r.expose();
  EXPECT_NE(text.find("t_seconds_count{model=\"m\"} 1\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("NaN"), std::string::npos) << text;
}

}  // namespace
}  // namespace llmq::telemetry
