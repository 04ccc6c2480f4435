#include "telemetry/runtime_reporter.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace llmq::telemetry {
namespace {

// (b - a) / span for two optional counters; nullopt when either is missing or span is empty.
std::optional<double> rate(const std::optional<double>& a, const std::optional<double>& b,
                           double span) {
  if (!a || !b || span <= 0) return std::nullopt;
  return (*b - *a) / span;
}

}  // namespace

RuntimeReporter::RuntimeReporter(EventSink& sink, ServiceMetrics& metrics, RuntimeSources sources,
                                 DocumentOrigin origin, std::chrono::milliseconds interval)
    : sink_(sink),
      metrics_(metrics),
      sources_(std::move(sources)),
      origin_(std::move(origin)),
      interval_(interval),
      prev_at_(std::chrono::steady_clock::now()),
      prev_tokens_(metrics.model_totals().generated_tokens),
      prev_proc_(read_proc()),
      thread_([this](std::stop_token stop) { run(stop); }) {}

RuntimeReporter::~RuntimeReporter() { stop(); }

void RuntimeReporter::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

RuntimeSnapshot RuntimeReporter::sample() {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - prev_at_).count();
  const ModelTotals totals = metrics_.model_totals();
  const ProcReading proc = read_proc();

  RuntimeSnapshot s;
  s.at = std::chrono::system_clock::now();
  s.queue_depth = std::llround(sources_.queue_depth());
  s.slots_busy = std::llround(sources_.slots_busy());
  s.slots_total = std::llround(sources_.slots_total());
  if (totals.window_count > 0 && totals.latency_s.size() == 3) {
    s.p50_ms = totals.latency_s[0] * 1000;
    s.p95_ms = totals.latency_s[1] * 1000;
    s.p99_ms = totals.latency_s[2] * 1000;
  }
  s.tokens_per_s = seconds > 0 ? (totals.generated_tokens - prev_tokens_) / seconds : 0;
  // ECS *.cpu.pct is a share of all cores, 0..1.
  const double cores = static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
  if (auto cpu = rate(prev_proc_.cpu_seconds, proc.cpu_seconds, seconds)) s.process_cpu_pct = *cpu / cores;
  const auto busy = rate(prev_proc_.host_busy_jiffies, proc.host_busy_jiffies, 1);
  const auto total = rate(prev_proc_.host_total_jiffies, proc.host_total_jiffies, 1);
  if (busy && total && *total > 0) s.host_cpu_pct = *busy / *total;
  if (proc.rss_bytes) s.process_rss_bytes = std::llround(*proc.rss_bytes);
  if (proc.host_memory_used_bytes) s.host_memory_used_bytes = std::llround(*proc.host_memory_used_bytes);

  prev_at_ = now;
  prev_tokens_ = totals.generated_tokens;
  prev_proc_ = proc;
  return s;
}

void RuntimeReporter::run(std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (true) {
    // Nothing notifies wake_: it only sleeps until the next snapshot or until stop is asked.
    wake_.wait_for(lock, stop, interval_, [] { return false; });
    if (stop.stop_requested()) return;
    try {
      const RuntimeSnapshot s = sample();
      sink_.submit(runtime_stream(origin_), runtime_document_id(s, origin_), runtime_document(s, origin_));
    } catch (const std::exception& e) {  // a failed reading skips one snapshot, no more
      spdlog::warn("runtime snapshot: {}", e.what());
    }
  }
}

}  // namespace llmq::telemetry
