#include "telemetry/service_metrics.h"

#include "telemetry/process_metrics.h"

namespace llmq::telemetry {
namespace {

// Request-level latencies of a CPU LLM: milliseconds (a cached one-token answer) to minutes
// (a long completion), denser below 2 s where most short requests land.
std::vector<double> request_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1,
          1.5,   2,    3,     5,    7.5,   10,  15,   20,  30,  60,  120, 300, 600};
}

// Time between two tokens of one stream: one decode step, ~1 ms to a few seconds when the
// batch is full of prompt chunks.
std::vector<double> inter_token_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5};
}

// From sampling a token to writing it out: tens of microseconds when nothing is in the way.
std::vector<double> flush_buckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1};
}

// Queue waits go from nothing (a free slot) to the request timeout.
std::vector<double> queue_wait_buckets() {
  std::vector<double> b = {0.001};
  for (double v : request_buckets()) b.push_back(v);
  return b;
}

// A model's cold start, load and warm-up decode: a fraction of a second (a small model in the
// page cache) to minutes (a large one read from a slow disk).
std::vector<double> load_buckets() {
  return {0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300};
}

// Reasons exposed at 0 from the start, so dashboards and alerts see the series before the
// first refusal.
const char* const kMainReasons[] = {"queue_full", "too_large",     "headers_too_large",
                                    "invalid",    "unsupported_media_type", "not_ready",
                                    "shutting_down", "not_found", "deadline",
                                    "rate_limited", "unauthorized", "auth_throttled",
                                    "too_many_connections", "client_connections",
                                    "cors_not_allowed"};

// The reasons of llmq_connections_closed_total (http::CloseReason), exposed at 0 likewise.
const char* const kCloseReasons[] = {"header_timeout", "body_timeout", "idle_timeout",
                                     "send_timeout", "slow_reader"};

}  // namespace

ServiceMetrics::ServiceMetrics(ServiceMetricsOptions options)
    : options_(options),
      requests_(registry_.counter("llmq_requests_total", "HTTP responses by route and status.",
                                  {"route", "code"})),
      rejected_(registry_.counter("llmq_requests_rejected_total",
                                  "Requests refused, or jobs ended early, by reason.", {"reason"})),
      connections_closed_(registry_.counter(
          "llmq_connections_closed_total",
          "Connections the server closed on a limit: a timeout or a client reading too slowly.",
          {"reason"})),
      queue_wait_(registry_
                      .histogram("llmq_queue_wait_seconds",
                                 "Time a job waited in LLM_INFERENCE until a worker took it.",
                                 queue_wait_buckets())
                      .with({})),
      job_retries_(registry_.counter("llmq_job_retries_total", "Jobs handed to a worker again.")
                       .with({})),
      dead_lettered_(registry_
                         .counter("llmq_jobs_dead_lettered_total",
                                  "Jobs given up on after their last attempt.")
                         .with({})),
      token_flush_(registry_
                       .histogram("llmq_token_flush_seconds",
                                  "From a token's sampling to its text written to the client's "
                                  "socket (streaming requests).",
                                  flush_buckets())
                       .with({})),
      ttft_(registry_.histogram("llmq_time_to_first_token_seconds",
                                "From a worker taking the job to its first token.",
                                request_buckets(), {"model"})),
      inter_token_(registry_.histogram("llmq_inter_token_latency_seconds",
                                       "Time between two consecutive tokens of one request.",
                                       inter_token_buckets(), {"model"})),
      duration_(registry_.histogram("llmq_request_duration_seconds",
                                    "From admission to the done event, queue wait included.",
                                    request_buckets(), {"model"})),
      window_(registry_.add(std::make_unique<Family<WindowQuantiles>>(
          "llmq_request_duration_window_seconds",
          "Quantiles of llmq_request_duration_seconds over a sliding window (DDSketch, 1% "
          "relative error); _sum and _count since start.",
          std::vector<std::string>{"model"},
          [w = options.window, n = options.sub_windows] {
            return std::make_unique<WindowQuantiles>(w, n);
          }))),
      prompt_tokens_(registry_.counter("llmq_prompt_tokens_total", "Prompt tokens processed.",
                                       {"model"})),
      generated_tokens_(registry_.counter("llmq_generated_tokens_total", "Tokens generated.",
                                          {"model"})),
      cache_hit_tokens_(registry_.counter(
          "llmq_prompt_cache_hit_tokens_total",
          "Prompt tokens not prefilled because a slot's KV cache already held them.", {"model"})),
      model_loads_(registry_.counter("llmq_model_loads_total",
                                     "Models loaded into memory by the warm pool (cold starts).",
                                     {"model"})),
      model_evictions_(registry_.counter(
          "llmq_model_evictions_total",
          "Models unloaded by the warm pool: lru (room for another model) or keep_alive (idle "
          "past its keep_alive).",
          {"model", "reason"})),
      model_load_seconds_(registry_.histogram(
          "llmq_model_load_seconds",
          "A model's cold start: loading its weights and a warm-up decode.", load_buckets(),
          {"model"})),
      model_loaded_(registry_.gauge("llmq_model_loaded",
                                    "1 while the model is in memory and serving, else 0.",
                                    {"model"})) {
  for (const char* reason : kMainReasons) rejected_.with({reason});
  for (const char* reason : kCloseReasons) connections_closed_.with({reason});
  std::vector<std::string> build_names;
  Labels build_values;
  for (auto& [name, value] : build_info_labels(options_.build)) {
    build_names.push_back(name);
    build_values.push_back(value);
  }
  registry_
      .gauge("llmq_build_info",
             "Always 1; llmq's version, the llama.cpp it runs and the CPU features in use as labels.",
             std::move(build_names))
      .with(build_values)
      .set(1);
  registry_.add(std::make_unique<ProcessCollector>());
}

void ServiceMetrics::watch_queue(std::function<double()> depth) {
  // The only queue today; the label keeps the series stable when more queues come.
  registry_.callback_gauge("llmq_queue_depth", "Jobs waiting in the queue.", std::move(depth),
                           {"queue"}, {"LLM_INFERENCE"});
}

void ServiceMetrics::watch_slots(std::function<double()> busy, std::function<double()> total) {
  registry_.callback_gauge("llmq_slots_busy", "Worker slots holding a job.", std::move(busy));
  registry_.callback_gauge("llmq_slots", "Worker slots (0 before the model loads).",
                           std::move(total));
}

void ServiceMetrics::watch_connections(std::function<double()> open, double max) {
  registry_.callback_gauge("llmq_connections_open", "HTTP connections being served.",
                           std::move(open));
  registry_.gauge("llmq_connections_max", "Most HTTP connections served at once (past it: 503).")
      .with({})
      .set(max);
}

void ServiceMetrics::count_connection_closed(const std::string& reason) {
  connections_closed_.with({reason}).inc();
}

void ServiceMetrics::count_response(const std::string& route, int status) {
  requests_.with({route, std::to_string(status)}).inc();
}

void ServiceMetrics::count_rejection(const std::string& reason) { rejected_.with({reason}).inc(); }

std::map<std::string, double> ServiceMetrics::rejections() const {
  std::map<std::string, double> out;
  rejected_.for_each([&out](const Labels& reason, const Counter& n) { out[reason.at(0)] = n.value(); });
  return out;
}

ModelMetrics& ServiceMetrics::model(const std::string& name) {
  std::lock_guard lock(models_mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    it = models_
             .emplace(name, ModelMetrics{ttft_.with({name}), inter_token_.with({name}),
                                         duration_.with({name}), window_.with({name}),
                                         prompt_tokens_.with({name}),
                                         generated_tokens_.with({name}),
                                         cache_hit_tokens_.with({name})})
             .first;
  }
  return it->second;
}

PoolModelMetrics& ServiceMetrics::pool_model(const std::string& name) {
  std::lock_guard lock(models_mu_);
  auto it = pool_models_.find(name);
  if (it == pool_models_.end()) {
    it = pool_models_
             .emplace(name, PoolModelMetrics{model_loads_.with({name}),
                                             model_evictions_.with({name, "lru"}),
                                             model_evictions_.with({name, "keep_alive"}),
                                             model_load_seconds_.with({name}),
                                             model_loaded_.with({name})})
             .first;
  }
  return it->second;
}

ModelTotals ServiceMetrics::model_totals() {
  ModelTotals totals;
  std::lock_guard lock(models_mu_);
  for (auto& entry : models_) {
    ModelMetrics& m = entry.second;
    totals.generated_tokens += m.generated_tokens.value();
    WindowQuantiles::Snapshot window = m.window.snapshot(kSummaryQuantiles);
    if (window.window_count > totals.window_count) {
      totals.window_count = window.window_count;
      totals.latency_s = std::move(window.values);
    }
  }
  return totals;
}

}  // namespace llmq::telemetry
