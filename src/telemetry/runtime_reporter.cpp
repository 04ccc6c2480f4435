#include "telemetry/runtime_reporter.h"

#include <cmath>

#include <spdlog/spdlog.h>

namespace llmq::telemetry {

RuntimeReporter::RuntimeReporter(EventSink& sink, ServiceMetrics& metrics, RuntimeSources sources,
                                 DocumentOrigin origin, std::chrono::milliseconds interval)
    : sink_(sink),
      metrics_(metrics),
      sources_(std::move(sources)),
      origin_(std::move(origin)),
      interval_(interval),
      prev_at_(std::chrono::steady_clock::now()),
      prev_tokens_(metrics.model_totals().generated_tokens),
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

  RuntimeSnapshot s;
  s.at = std::chrono::system_clock::now();
  s.worker = sources_.worker;
  s.queue_depth = std::llround(sources_.queue_depth());
  s.slots_busy = std::llround(sources_.slots_busy());
  s.slots_total = std::llround(sources_.slots_total());
  if (totals.window_count > 0 && totals.latency_s.size() == 3) {
    s.p50_ms = totals.latency_s[0] * 1000;
    s.p95_ms = totals.latency_s[1] * 1000;
    s.p99_ms = totals.latency_s[2] * 1000;
  }
  s.tokens_per_s = seconds > 0 ? (totals.generated_tokens - prev_tokens_) / seconds : 0;
  s.resources = resources_.sample();

  prev_at_ = now;
  prev_tokens_ = totals.generated_tokens;
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
      if (!sources_.relayed) continue;
      for (const RelayedSnapshot& r : sources_.relayed()) {
        DocumentOrigin origin = origin_;
        origin.host = r.host;
        sink_.submit(runtime_stream(origin_), r.id, runtime_document(r.snapshot, origin));
      }
    } catch (const std::exception& e) {  // a failed reading skips one snapshot, no more
      spdlog::warn("runtime snapshot: {}", e.what());
    }
  }
}

}  // namespace llmq::telemetry
