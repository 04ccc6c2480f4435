// ServiceMetrics: llmq's own metrics (the names, types and labels of docs/observability.md), in
// one Registry that GET /metrics exposes.
//
// Instruments with fixed labels are resolved once and kept: `model()` hands the scheduler every
// per-model instrument in one struct, so the decode loop never looks a label up.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "telemetry/build_info.h"
#include "telemetry/metrics.h"
#include "telemetry/window_quantiles.h"

namespace llmq::telemetry {

// The per-model instruments, owned by the registry.
struct ModelMetrics {
  Histogram& ttft;             // llmq_time_to_first_token_seconds
  Histogram& inter_token;      // llmq_inter_token_latency_seconds
  Histogram& duration;         // llmq_request_duration_seconds
  WindowQuantiles& window;     // llmq_request_duration_window_seconds
  Counter& prompt_tokens;      // llmq_prompt_tokens_total
  Counter& generated_tokens;   // llmq_generated_tokens_total
  Counter& cache_hit_tokens;   // llmq_prompt_cache_hit_tokens_total
};

// The warm pool's instruments of one model (engine/model_pool.h), owned by the registry.
struct PoolModelMetrics {
  Counter& loads;               // llmq_model_loads_total
  Counter& evicted_lru;         // llmq_model_evictions_total{reason="lru"}
  Counter& evicted_keep_alive;  // llmq_model_evictions_total{reason="keep_alive"}
  Histogram& load_seconds;      // llmq_model_load_seconds
  Gauge& loaded;                // llmq_model_loaded
};

// What the runtime snapshot documents read from the per-model instruments.
struct ModelTotals {
  std::vector<double> latency_s;  // kSummaryQuantiles of the request duration window (seconds)
  std::uint64_t window_count = 0;  // samples in that window; 0: latency_s means nothing
  double generated_tokens = 0;     // over every model, since start
};

struct ServiceMetricsOptions {
  std::chrono::milliseconds window{60000};  // of llmq_request_duration_window_seconds
  int sub_windows = 6;
  BuildInfo build = llmq_build_info();  // the labels of llmq_build_info
};

class ServiceMetrics {
 public:
  explicit ServiceMetrics(ServiceMetricsOptions options = {});

  // Callback gauges on the queue and the worker, registered by whoever owns them.
  void watch_queue(std::function<double()> depth);
  void watch_slots(std::function<double()> busy, std::function<double()> total);
  // The HTTP server's open connections, and the most it accepts (--max-connections).
  void watch_connections(std::function<double()> open, double max);

  // One HTTP response. `route` is a known route path or "other".
  void count_response(const std::string& route, int status);
  // A refused request or a job that ended early; reasons are listed in observability.md.
  void count_rejection(const std::string& reason);
  // llmq_requests_rejected_total's values, by reason (every reason counted so far, and those
  // exposed at 0 from the start).
  std::map<std::string, double> rejections() const;
  // A connection the server closed on a limit (a timeout, a slow reader); see observability.md.
  void count_connection_closed(const std::string& reason);
  Histogram& queue_wait() { return queue_wait_; }
  Counter& job_retries() { return job_retries_; }
  Counter& dead_lettered() { return dead_lettered_; }
  // llmq_token_flush_seconds: a token's sampling to its text handed to the client's socket.
  Histogram& token_flush() { return token_flush_; }
  ModelMetrics& model(const std::string& name);
  // The warm pool's instruments of a model; every series exists (at 0) once this is called.
  PoolModelMetrics& pool_model(const std::string& name);
  // Latency of the busiest model's window (llmq serves one model) and tokens of all of them.
  ModelTotals model_totals();

  std::string expose() const { return registry_.expose(); }
  Registry& registry() { return registry_; }

 private:
  Registry registry_;
  const ServiceMetricsOptions options_;
  Family<Counter>& requests_;
  Family<Counter>& rejected_;
  Family<Counter>& connections_closed_;
  Histogram& queue_wait_;
  Counter& job_retries_;
  Counter& dead_lettered_;
  Histogram& token_flush_;
  Family<Histogram>& ttft_;
  Family<Histogram>& inter_token_;
  Family<Histogram>& duration_;
  Family<WindowQuantiles>& window_;
  Family<Counter>& prompt_tokens_;
  Family<Counter>& generated_tokens_;
  Family<Counter>& cache_hit_tokens_;
  Family<Counter>& model_loads_;
  Family<Counter>& model_evictions_;
  Family<Histogram>& model_load_seconds_;
  Family<Gauge>& model_loaded_;
  std::mutex models_mu_;                        // guards models_ and pool_models_
  std::map<std::string, ModelMetrics> models_;  // resolved per-model instruments
  std::map<std::string, PoolModelMetrics> pool_models_;  // resolved warm-pool instruments
};

}  // namespace llmq::telemetry
