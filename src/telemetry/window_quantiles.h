// Quantiles of the last minute's request durations, for the summary
// llmq_request_duration_window_seconds.
//
// Sketch: DDSketch (Masson, Rim, Lee, VLDB 2019) with relative accuracy alpha = 0.01. A positive
// value x goes to bucket i = ceil(log_gamma(x)), gamma = (1 + alpha) / (1 - alpha), and bucket i
// reports 2 gamma^i / (gamma + 1).
//
// ERROR BOUND: for q in [0, 1] and the window's n samples sorted x_(0) <= ... <= x_(n-1), the
// reported quantile v satisfies |v - x_(k)| <= alpha * x_(k) with k = floor(q * (n - 1)): every
// quantile is within 1 % relative error of the true sample quantile (the sample itself, no
// interpolation). This holds whatever the distribution, and merging sketches keeps it exactly
// (buckets just add). Values below kMinValue (1 microsecond) are counted as kMinValue, which
// bounds the bucket count at about (ln(max/min) / ln(gamma)) ~ 1000 for 1 µs .. 1 day.
//
// Window: a ring of `sub_windows` sketches, each covering window / sub_windows of time. A sample
// lands in the sketch of the current sub-window; a scrape merges the sketches of the current and
// the previous sub_windows - 1 sub-windows. So the quantiles cover the last (window - width, window]
// seconds: with the default 6 x 10 s, between 50 and 60 s, never an older sample.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "telemetry/metrics.h"

namespace llmq::telemetry {

class DDSketch {
 public:
  static constexpr double kMinValue = 1e-6;
  explicit DDSketch(double alpha = 0.01);

  void add(double v, std::uint64_t n = 1);
  void merge(const DDSketch& other);  // same alpha only
  void clear();
  // The q-quantile (see the error bound above); 0 for an empty sketch.
  double quantile(double q) const;
  std::uint64_t count() const { return count_; }
  double alpha() const { return alpha_; }

 private:
  int index_of(double v) const;
  double value_of(int index) const;

  double alpha_;
  double gamma_;
  double log_gamma_;                     // ln(gamma)
  std::map<int, std::uint64_t> buckets_;  // index -> count, only non-empty buckets
  std::uint64_t count_ = 0;
};

// The window of sketches. Thread-safe (one mutex: one observation per request, not per token).
class WindowQuantiles {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  explicit WindowQuantiles(std::chrono::milliseconds window = std::chrono::seconds(60),
                           int sub_windows = 6, double alpha = 0.01, Now now = Clock::now);

  void observe(double v);

  struct Snapshot {
    std::vector<double> values;  // one per requested quantile; 0 when the window is empty
    std::uint64_t window_count = 0;  // samples inside the window
    double total_sum = 0;            // every sample ever observed (summary _sum)
    std::uint64_t total_count = 0;   // every sample ever observed (summary _count)
  };
  Snapshot snapshot(const std::vector<double>& quantiles) const;

 private:
  std::int64_t epoch_of(Clock::time_point t) const;

  const std::chrono::milliseconds width_;  // one sub-window
  const Now now_;
  mutable std::mutex mu_;                 // guards everything below
  std::vector<DDSketch> ring_;            // sub-window sketches
  std::vector<std::int64_t> ring_epoch_;  // which sub-window each sketch holds
  double total_sum_ = 0;
  std::uint64_t total_count_ = 0;
};

inline const std::vector<double> kSummaryQuantiles = {0.5, 0.95, 0.99};

template <>
void Family<WindowQuantiles>::collect(std::string& out) const;

}  // namespace llmq::telemetry
