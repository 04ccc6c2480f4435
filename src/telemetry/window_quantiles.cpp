#include "telemetry/window_quantiles.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace llmq::telemetry {

DDSketch::DDSketch(double alpha)
    : alpha_(alpha), gamma_((1 + alpha) / (1 - alpha)), log_gamma_(std::log(gamma_)) {
  if (!(alpha > 0 && alpha < 1)) throw std::invalid_argument("DDSketch alpha must be in (0, 1)");
}

int DDSketch::index_of(double v) const {
  return static_cast<int>(std::ceil(std::log(std::max(v, kMinValue)) / log_gamma_));
}

double DDSketch::value_of(int index) const {
  // The point of (gamma^(i-1), gamma^i] whose relative distance to both ends is alpha.
  return 2 * std::pow(gamma_, index) / (gamma_ + 1);
}

void DDSketch::add(double v, std::uint64_t n) {
  if (!(v >= 0) || n == 0) return;  // NaN and negatives: durations are never negative
  buckets_[index_of(v)] += n;
  count_ += n;
}

void DDSketch::merge(const DDSketch& other) {
  for (const auto& [i, n] : other.buckets_) buckets_[i] += n;
  count_ += other.count_;
}

void DDSketch::clear() {
  buckets_.clear();
  count_ = 0;
}

double DDSketch::quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The k-th smallest sample (0-based), the same rank the error bound is stated for.
  const auto k = static_cast<std::uint64_t>(std::floor(q * static_cast<double>(count_ - 1)));
  std::uint64_t seen = 0;
  for (const auto& [i, n] : buckets_) {
    seen += n;
    if (seen > k) return value_of(i);
  }
  return value_of(buckets_.rbegin()->first);
}

WindowQuantiles::WindowQuantiles(std::chrono::milliseconds window, int sub_windows, double alpha,
                                 Now now)
    : width_(window / std::max(sub_windows, 1)),
      now_(std::move(now)),
      ring_(static_cast<std::size_t>(std::max(sub_windows, 1)), DDSketch(alpha)),
      ring_epoch_(ring_.size(), -1) {
  if (width_.count() <= 0) throw std::invalid_argument("window too short for its sub-windows");
}

std::int64_t WindowQuantiles::epoch_of(Clock::time_point t) const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() /
         width_.count();
}

void WindowQuantiles::observe(double v) {
  const std::int64_t epoch = epoch_of(now_());
  const auto slot = static_cast<std::size_t>(epoch % static_cast<std::int64_t>(ring_.size()));
  std::lock_guard lock(mu_);
  if (ring_epoch_[slot] != epoch) {  // the sketch holds a sub-window that has left the window
    ring_[slot].clear();
    ring_epoch_[slot] = epoch;
  }
  ring_[slot].add(v);
  total_sum_ += v;
  ++total_count_;
}

WindowQuantiles::Snapshot WindowQuantiles::snapshot(const std::vector<double>& quantiles) const {
  const std::int64_t epoch = epoch_of(now_());
  const auto n = static_cast<std::int64_t>(ring_.size());
  Snapshot s;
  std::lock_guard lock(mu_);
  DDSketch merged(ring_.front().alpha());
  for (std::size_t i = 0; i < ring_.size(); ++i) {
    if (ring_epoch_[i] > epoch - n && ring_epoch_[i] <= epoch) merged.merge(ring_[i]);
  }
  for (double q : quantiles) s.values.push_back(merged.quantile(q));
  s.window_count = merged.count();
  s.total_sum = total_sum_;
  s.total_count = total_count_;
  return s;
}

template <>
void Family<WindowQuantiles>::collect(std::string& out) const {
  expo::header(out, name_, help_, "summary");
  std::lock_guard lock(mu_);
  for (const auto& [labels, w] : children_) {
    const WindowQuantiles::Snapshot s = w->snapshot(kSummaryQuantiles);
    for (std::size_t i = 0; i < kSummaryQuantiles.size(); ++i) {
      const std::string extra = "quantile=\"" + expo::format_value(kSummaryQuantiles[i]) + '"';
      // An empty window has no quantiles: NaN, as Prometheus' own clients report it.
      const double v = s.window_count == 0 ? NAN : s.values[i];
      out += name_ + expo::label_set(label_names_, labels, extra) + ' ' + expo::format_value(v) +
             '\n';
    }
    const std::string ls = expo::label_set(label_names_, labels);
    out += name_ + "_sum" + ls + ' ' + expo::format_value(s.total_sum) + '\n';
    out += name_ + "_count" + ls + ' ' + std::to_string(s.total_count) + '\n';
  }
}

}  // namespace llmq::telemetry
