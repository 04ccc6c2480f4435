#include "telemetry/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace llmq::telemetry {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end()) {
    throw std::invalid_argument("histogram bounds must be strictly ascending");
  }
}

void Histogram::observe(double v) {
  // `le` is inclusive: a value equal to a bound belongs to that bound's bucket.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  const auto bucket = static_cast<std::size_t>(it - bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // The count is the +Inf bucket, so the two always agree even during concurrent updates.
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

namespace expo {

std::string escape_label_value(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Shortest text that reads back as the same double.
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string label_set(const std::vector<std::string>& names, const Labels& values,
                      const std::string& extra) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (!out.empty()) out += ',';
    out += names[i] + "=\"" + escape_label_value(values[i]) + '"';
  }
  if (!extra.empty()) {
    if (!out.empty()) out += ',';
    out += extra;
  }
  return out.empty() ? out : '{' + out + '}';
}

void header(std::string& out, const std::string& name, const std::string& help,
            const char* type) {
  out += "# HELP " + name + ' ' + escape_help(help) + '\n';
  out += "# TYPE " + name + ' ' + type + '\n';
}

}  // namespace expo

template <>
void Family<Counter>::collect(std::string& out) const {
  expo::header(out, name_, help_, "counter");
  std::lock_guard lock(mu_);
  for (const auto& [labels, c] : children_) {
    out += name_ + expo::label_set(label_names_, labels) + ' ' +
           expo::format_value(c->value()) + '\n';
  }
}

template <>
void Family<Gauge>::collect(std::string& out) const {
  expo::header(out, name_, help_, "gauge");
  std::lock_guard lock(mu_);
  for (const auto& [labels, g] : children_) {
    out += name_ + expo::label_set(label_names_, labels) + ' ' +
           expo::format_value(g->value()) + '\n';
  }
}

template <>
void Family<Histogram>::collect(std::string& out) const {
  expo::header(out, name_, help_, "histogram");
  std::lock_guard lock(mu_);
  for (const auto& [labels, h] : children_) {
    const Histogram::Snapshot s = h->snapshot();
    for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
      const double le = i < s.bounds.size() ? s.bounds[i] : INFINITY;
      const std::string extra = "le=\"" + expo::format_value(le) + '"';
      out += name_ + "_bucket" + expo::label_set(label_names_, labels, extra) + ' ' +
             std::to_string(s.cumulative[i]) + '\n';
    }
    const std::string ls = expo::label_set(label_names_, labels);
    out += name_ + "_sum" + ls + ' ' + expo::format_value(s.sum) + '\n';
    out += name_ + "_count" + ls + ' ' + std::to_string(s.count) + '\n';
  }
}

void CallbackGauge::collect(std::string& out) const {
  expo::header(out, name_, help_, "gauge");
  out += name_ + labels_ + ' ' + expo::format_value(read_()) + '\n';
}

void CallbackFamily::collect(std::string& out) const {
  expo::header(out, name_, help_, type_);
  for (const auto& [labels, value] : read_())
    out += name_ + expo::label_set(label_names_, labels) + ' ' + expo::format_value(value) + '\n';
}

void Registry::callback_family(const std::string& name, const std::string& help, const char* type,
                               std::vector<std::string> label_names, CallbackFamily::Read read) {
  add(std::make_unique<CallbackFamily>(name, help, type, std::move(label_names), std::move(read)));
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  return add(std::make_unique<Family<Counter>>(name, help, std::move(label_names),
                                               [] { return std::make_unique<Counter>(); }));
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               std::vector<std::string> label_names) {
  return add(std::make_unique<Family<Gauge>>(name, help, std::move(label_names),
                                             [] { return std::make_unique<Gauge>(); }));
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<double> bounds,
                                       std::vector<std::string> label_names) {
  return add(std::make_unique<Family<Histogram>>(
      name, help, std::move(label_names),
      [bounds = std::move(bounds)] { return std::make_unique<Histogram>(bounds); }));
}

void Registry::callback_gauge(const std::string& name, const std::string& help,
                              std::function<double()> read, std::vector<std::string> label_names,
                              Labels label_values) {
  add(std::make_unique<CallbackGauge>(name, help, std::move(read), std::move(label_names),
                                      std::move(label_values)));
}

std::string Registry::expose() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& c : collectors_) c->collect(out);
  return out;
}

}  // namespace llmq::telemetry
