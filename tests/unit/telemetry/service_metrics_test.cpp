#include "telemetry/service_metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <regex>

#include "engine/fake_engine.h"
#include "engine/scheduler.h"
#include "queue/in_process_queue.h"

namespace llmq::telemetry {
namespace {

using std::chrono::milliseconds;

// The value of one sample line of the exposition, or -1 when absent.
double sample(const std::string& text, const std::string& series) {
  const std::string key = series + ' ';
  const auto at = text.find('\n' + key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + 1 + key.size()));
}

TEST(ServiceMetrics, EveryContractMetricHasItsType) {
  ServiceMetrics m;
  m.watch_queue([] { return 3.0; });
  m.watch_slots([] { return 1.0; }, [] { return 4.0; });
  m.model("smol");
  const std::string text = m.expose();
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"llmq_requests_total", "counter"},
      {"llmq_requests_rejected_total", "counter"},
      {"llmq_queue_depth", "gauge"},
      {"llmq_slots_busy", "gauge"},
      {"llmq_slots", "gauge"},
      {"llmq_queue_wait_seconds", "histogram"},
      {"llmq_time_to_first_token_seconds", "histogram"},
      {"llmq_inter_token_latency_seconds", "histogram"},
      {"llmq_request_duration_seconds", "histogram"},
      {"llmq_request_duration_window_seconds", "summary"},
      {"llmq_prompt_tokens_total", "counter"},
      {"llmq_generated_tokens_total", "counter"},
      {"llmq_job_retries_total", "counter"},
      {"llmq_jobs_dead_lettered_total", "counter"},
      {"llmq_build_info", "gauge"},
      {"process_cpu_seconds_total", "counter"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
      {"process_max_fds", "gauge"},
      {"process_start_time_seconds", "gauge"},
      {"process_virtual_memory_bytes", "gauge"},
      {"llmq_host_cpu_usage_ratio", "gauge"},
      {"llmq_host_memory_used_bytes", "gauge"},
      {"llmq_host_memory_total_bytes", "gauge"},
  };
  for (const auto& [name, type] : expected) {
    EXPECT_NE(text.find("# TYPE " + name + ' ' + type + '\n'), std::string::npos) << name;
  }
  EXPECT_EQ(sample(text, "llmq_queue_depth{queue=\"LLM_INFERENCE\"}"), 3);
  EXPECT_EQ(sample(text, "llmq_slots"), 4);
  EXPECT_EQ(sample(text, "llmq_requests_rejected_total{reason=\"queue_full\"}"), 0);
  EXPECT_EQ(sample(text, "llmq_requests_rejected_total{reason=\"deadline\"}"), 0);
  EXPECT_EQ(sample(text, "llmq_job_retries_total"), 0);
  const double ratio = sample(text, "llmq_host_cpu_usage_ratio");
  EXPECT_GE(ratio, 0);
  EXPECT_LE(ratio, 1);
  EXPECT_GT(sample(text, "process_resident_memory_bytes"), 0);
  EXPECT_GT(sample(text, "process_open_fds"), 0);
}

TEST(ServiceMetrics, CountsResponsesAndRejections) {
  ServiceMetrics m;
  m.count_response("/api/v1/req", 200);
  m.count_response("/api/v1/req", 200);
  m.count_response("other", 431);
  m.count_rejection("headers_too_large");
  const std::string text = m.expose();
  EXPECT_EQ(sample(text, "llmq_requests_total{route=\"/api/v1/req\",code=\"200\"}"), 2);
  EXPECT_EQ(sample(text, "llmq_requests_total{route=\"other\",code=\"431\"}"), 1);
  EXPECT_EQ(sample(text, "llmq_requests_rejected_total{reason=\"headers_too_large\"}"), 1);
}

TEST(ServiceMetrics, ConnectionsOpenMaxAndClosedByReason) {
  ServiceMetrics m;
  m.watch_connections([] { return 7.0; }, 1024);
  m.count_connection_closed("slow_reader");
  m.count_rejection("too_many_connections");
  const std::string text = m.expose();
  EXPECT_NE(text.find("# TYPE llmq_connections_open gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE llmq_connections_max gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE llmq_connections_closed_total counter\n"), std::string::npos);
  EXPECT_EQ(sample(text, "llmq_connections_open"), 7);
  EXPECT_EQ(sample(text, "llmq_connections_max"), 1024);
  EXPECT_EQ(sample(text, "llmq_connections_closed_total{reason=\"slow_reader\"}"), 1);
  EXPECT_EQ(sample(text, "llmq_requests_rejected_total{reason=\"too_many_connections\"}"), 1);
  // Every reason the HTTP server reports is there from the start, at 0.
  for (const char* reason : {"header_timeout", "body_timeout", "idle_timeout", "send_timeout"}) {
    EXPECT_EQ(sample(text, std::string("llmq_connections_closed_total{reason=\"") + reason + "\"}"),
              0)
        << reason;
  }
}

class EndSink final : public JobSink {
 public:
  void on_event(JobEvent event) override {
    std::lock_guard lock(mu_);
    if (std::holds_alternative<DoneEvent>(event) || std::holds_alternative<ErrorEvent>(event)) {
      ended_ = true;
      cv_.notify_all();
    }
  }
  bool wait_end() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, milliseconds(5000), [&] { return ended_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool ended_ = false;
};

TEST(ServiceMetrics, SchedulerObservesLatenciesAndTokens) {
  ServiceMetrics m;
  testing::FakeEngine engine(2, 256, 64);
  InProcessQueue queue(10);
  std::vector<std::shared_ptr<EndSink>> sinks;
  for (int i = 0; i < 3; ++i) {
    ValidatedRequest r;
    r.params.max_tokens = 5;
    r.prompt_tokens = {'a', 'b', 'c'};
    sinks.push_back(std::make_shared<EndSink>());
    queue.push(std::make_shared<Job>("j" + std::to_string(i), std::move(r), std::nullopt,
                                     sinks.back()));
  }
  SchedulerOptions options;
  options.metrics = &m;
  Scheduler scheduler(engine, queue, options);
  scheduler.start();
  for (auto& s : sinks) ASSERT_TRUE(s->wait_end());
  scheduler.stop();

  const std::string text = m.expose();
  EXPECT_EQ(sample(text, "llmq_prompt_tokens_total{model=\"fake\"}"), 9);
  EXPECT_EQ(sample(text, "llmq_generated_tokens_total{model=\"fake\"}"), 15);
  EXPECT_EQ(sample(text, "llmq_queue_wait_seconds_count"), 3);
  EXPECT_EQ(sample(text, "llmq_time_to_first_token_seconds_count{model=\"fake\"}"), 3);
  EXPECT_EQ(sample(text, "llmq_inter_token_latency_seconds_count{model=\"fake\"}"), 12);
  EXPECT_EQ(sample(text, "llmq_request_duration_seconds_count{model=\"fake\"}"), 3);
  EXPECT_EQ(sample(text, "llmq_request_duration_window_seconds_count{model=\"fake\"}"), 3);
  EXPECT_GE(sample(text, "llmq_request_duration_window_seconds{model=\"fake\",quantile=\"0.5\"}"),
            0);
}

}  // namespace
}  // namespace llmq::telemetry
