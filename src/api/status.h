// The live status of a serving process: GET /api/v1/status, which the page at GET / polls
// (docs/api.md, "Live status").
//
// status_json() turns plain inputs into the documented JSON (unit-tested on given inputs);
// ServiceStatus gathers those inputs from the running process: the queue's waiting jobs, the
// slots, the latency window it keeps itself, the refusal counters, the process's CPU and memory.
// Nothing here ever holds a prompt or a completion: a waiting job is its id, model, place and
// age; a slot is its job's id, state and token count.
//
// Thread safety: ServiceStatus's methods may be called from any thread (the HTTP threads);
// its own state (the latency window, the previous CPU reading) is guarded internally.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/model_catalog.h"
#include "engine/slot_board.h"
#include "queue/job_queue.h"
#include "telemetry/request_document.h"
#include "telemetry/service_metrics.h"
#include "telemetry/window_quantiles.h"

namespace llmq {

inline constexpr const char* kStatusRoute = "/api/v1/status";
// The most waiting jobs one status lists (the oldest); `waiting_truncated` says when more wait.
inline constexpr std::size_t kStatusWaitingLimit = 100;

// One worker as a gateway knows it from its heartbeats (queue/worker_presence.h).
struct WorkerSlots {
  std::string worker{};
  std::int64_t slots = 0;
  std::int64_t busy = 0;
};

// The slots: `list` where this process runs them (serve), `workers` where it only hears of them
// (a gateway); the other is nullopt.
struct SlotsStatus {
  std::int64_t busy = 0;
  std::int64_t total = 0;
  std::optional<std::vector<SlotView>> list{};
  std::optional<std::vector<WorkerSlots>> workers{};
};

// The slots of this process (serve, worker) as the status shows them.
SlotsStatus local_slots(std::vector<SlotView> slots);

// Quantiles of the requests completed within the window, in milliseconds; nullopt when none was.
struct LatencySummary {
  double window_s = 0;
  std::uint64_t count = 0;  // requests that completed within the window
  std::optional<double> ttft_p50_ms{}, ttft_p95_ms{}, total_p50_ms{}, total_p95_ms{};
};

// A served model: its name (what clients pass as `model`), and whether it is in memory now.
struct StatusModel {
  std::string name{};
  bool loaded = false;
};

struct StatusInputs {
  std::chrono::system_clock::time_point time{};  // the `time` field
  Clock::time_point now{};                        // ages and running times are counted to this
  double uptime_s = 0;
  std::string version{};
  bool ready = false;
  bool draining = false;
  std::vector<StatusModel> models{};      // the default first; empty until the catalog is loaded
  std::int64_t depth = 0;
  std::int64_t capacity = 0;
  std::vector<WaitingJob> waiting{};      // oldest first
  bool waiting_truncated = false;         // more jobs wait than `waiting` lists
  std::optional<SlotsStatus> slots{};     // nullopt: not known here (JSON null)
  LatencySummary latency{};
  std::map<std::string, double> refusals{};  // llmq_requests_rejected_total by reason
  std::optional<double> cpu_percent{};        // of one core (200: two cores busy)
  std::optional<double> rss_bytes{};
};

// The JSON of GET /api/v1/status (every field documented in docs/api.md).
nlohmann::json status_json(const StatusInputs& in);

// Where ServiceStatus reads what it does not keep itself.
struct StatusSources {
  std::function<SlotsStatus()> slots{};                // null: slots unknown here
  const telemetry::ServiceMetrics* metrics = nullptr;  // the refusal counters; null: none
  std::string version{};                               // llmq's
  std::chrono::milliseconds window{60000};             // of the latency quantiles
};

class ServiceStatus {
 public:
  explicit ServiceStatus(StatusSources sources);

  // A request's end, from its record: a completed job's TTFT and duration join the window.
  void observe(const telemetry::RequestRecord& record);
  // The status now, of this queue and these models (null: still loading).
  nlohmann::json snapshot(const JobProducer& queue, const ModelCatalog* models, bool draining);
  // The inputs of that status (what snapshot() renders).
  StatusInputs inputs(const JobProducer& queue, const ModelCatalog* models, bool draining);

 private:
  // The process's CPU use, in % of one core, over at least the last second (since start at first).
  std::optional<double> cpu_percent(std::optional<double> cpu_seconds, Clock::time_point now);

  const StatusSources sources_;
  const Clock::time_point started_;
  telemetry::WindowQuantiles ttft_;   // seconds, of completed jobs that produced a token
  telemetry::WindowQuantiles total_;  // seconds, admission to done
  std::mutex cpu_mu_;                 // guards the three below
  std::optional<double> cpu_seconds_at_;  // the reading the current value is measured from
  Clock::time_point cpu_read_at_{};
  std::optional<double> cpu_percent_;
};

}  // namespace llmq
