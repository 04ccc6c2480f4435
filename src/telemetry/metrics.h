// A small Prometheus metrics registry: counters, gauges, callback gauges, histograms with fixed
// buckets and families with labels, exposed in the text format 0.0.4.
//
// Thread safety: everything may be used from any thread. Updating an instrument is a relaxed
// atomic operation, cheap enough for the decode loop's per-token path. Looking an instrument up
// by label values (Family::with) takes the family's mutex, so callers whose labels are fixed
// (the model name, a route) look it up once and keep the reference: instruments live as long as
// the registry and never move.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace llmq::telemetry {

using Labels = std::vector<std::string>;  // label values, in the family's label-name order

// Monotonic; only goes up.
class Counter {
 public:
  void inc(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  void dec(double v = 1.0) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Fixed upper bounds (ascending, +Inf implied). Per-bucket counts are kept non-cumulative and
// summed at scrape, so an observation is one bucket increment plus sum.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);

  struct Snapshot {
    std::vector<double> bounds;            // upper bounds, without +Inf
    std::vector<std::uint64_t> cumulative;  // bounds.size() + 1 entries, the last is +Inf
    double sum = 0;
    std::uint64_t count = 0;  // equals cumulative.back()
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1 buckets
  std::atomic<double> sum_{0.0};
};

// Bounds start, start*factor, ... (count of them).
std::vector<double> exponential_buckets(double start, double factor, int count);

// Something that writes its samples (with HELP and TYPE) into the exposition text.
class Collector {
 public:
  virtual ~Collector() = default;
  virtual void collect(std::string& out) const = 0;
};

// Helpers of the exposition format, shared by the collectors.
namespace expo {
std::string escape_label_value(const std::string& v);
std::string escape_help(const std::string& v);
std::string format_value(double v);
// `{a="x",b="y"}`, with `extra` (already formatted `k="v"`) appended; empty when no labels.
std::string label_set(const std::vector<std::string>& names, const Labels& values,
                      const std::string& extra = "");
void header(std::string& out, const std::string& name, const std::string& help,
            const char* type);
}  // namespace expo

// A metric name with label names and one instrument per distinct label values.
template <class T>
class Family : public Collector {
 public:
  using Factory = std::function<std::unique_ptr<T>()>;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         Factory factory)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)),
        factory_(std::move(factory)) {}

  // The instrument for these label values, created at zero on first use.
  T& with(const Labels& values) {
    std::lock_guard lock(mu_);
    auto& slot = children_[values];
    if (!slot) slot = factory_();
    return *slot;
  }
  void collect(std::string& out) const override;
  // Calls visit(label values, instrument) for each instrument, in label order, under the
  // family's lock: `visit` must be quick and must not use this family.
  template <class Visit>
  void for_each(Visit&& visit) const {
    std::lock_guard lock(mu_);
    for (const auto& [values, child] : children_) visit(values, *child);
  }

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const Factory factory_;
  mutable std::mutex mu_;                              // guards children_
  std::map<Labels, std::unique_ptr<T>> children_;      // sorted: stable exposition order
};

// Each instrument type writes its own samples; defined next to the type.
template <>
void Family<Counter>::collect(std::string& out) const;
template <>
void Family<Gauge>::collect(std::string& out) const;
template <>
void Family<Histogram>::collect(std::string& out) const;

// A gauge whose value is computed when scraped (queue depth, /proc readings).
class CallbackGauge : public Collector {
 public:
  CallbackGauge(std::string name, std::string help, std::function<double()> read,
                std::vector<std::string> label_names = {}, Labels label_values = {})
      : name_(std::move(name)), help_(std::move(help)), read_(std::move(read)),
        labels_(expo::label_set(label_names, label_values)) {}
  void collect(std::string& out) const override;

 private:
  const std::string name_;
  const std::string help_;
  const std::function<double()> read_;
  const std::string labels_;  // formatted once: fixed
};

// Series computed when scraped, any number of them (one per model, one per worker): a gauge or
// a counter whose label values are known only then.
class CallbackFamily : public Collector {
 public:
  using Read = std::function<std::vector<std::pair<Labels, double>>()>;
  CallbackFamily(std::string name, std::string help, const char* type,
                 std::vector<std::string> label_names, Read read)
      : name_(std::move(name)), help_(std::move(help)), type_(type),
        label_names_(std::move(label_names)), read_(std::move(read)) {}
  void collect(std::string& out) const override;

 private:
  const std::string name_;
  const std::string help_;
  const char* const type_;  // "gauge" or "counter"
  const std::vector<std::string> label_names_;
  const Read read_;
};

class Registry {
 public:
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<double> bounds,
                               std::vector<std::string> label_names = {});
  void callback_gauge(const std::string& name, const std::string& help,
                      std::function<double()> read, std::vector<std::string> label_names = {},
                      Labels label_values = {});
  // `type`: "gauge" or "counter" (then `read` must never go down for a series).
  void callback_family(const std::string& name, const std::string& help, const char* type,
                       std::vector<std::string> label_names, CallbackFamily::Read read);
  // Any other collector (summaries, groups of /proc readings); kept in registration order.
  template <class C>
  C& add(std::unique_ptr<C> collector) {
    C& ref = *collector;
    std::lock_guard lock(mu_);
    collectors_.push_back(std::move(collector));
    return ref;
  }

  // The whole exposition text, in registration order.
  std::string expose() const;

 private:
  mutable std::mutex mu_;                              // guards collectors_ (not their values)
  std::vector<std::unique_ptr<Collector>> collectors_;
};

inline constexpr const char* kExpositionContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace llmq::telemetry
