#include "api/status.h"

#include <cmath>

#include "telemetry/process_metrics.h"

namespace llmq {
namespace {

using nlohmann::json;

// CPU use is measured over at least this long, however often the status is asked for.
constexpr std::chrono::seconds kCpuInterval{1};

std::int64_t ms_since(Clock::time_point then, Clock::time_point now) {
  return std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(now - then).count());
}

json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

// Milliseconds with a tenth: enough for a page, and no 15-digit noise.
json rounded(const std::optional<double>& v) {
  return v ? json(std::round(*v * 10) / 10) : json(nullptr);
}

json queue_json(const StatusInputs& in) {
  json waiting = json::array();
  for (const WaitingJob& job : in.waiting) {
    waiting.push_back({{"id", job.id},
                       {"model", job.model},
                       {"place", job.place},
                       {"age_ms", ms_since(job.arrived, in.now)}});
  }
  return {{"name", kQueueName},
          {"depth", in.depth},
          {"capacity", in.capacity},
          {"waiting", std::move(waiting)},
          {"waiting_truncated", in.waiting_truncated}};
}

json slot_json(const SlotView& slot, Clock::time_point now) {
  const bool idle = slot.job_id.empty();
  return {{"slot", slot.slot},
          {"model", slot.model},
          {"state", slot.state},
          {"id", idle ? json(nullptr) : json(slot.job_id)},
          {"tokens", slot.tokens},
          {"tokens_per_s", rounded(slot.tokens_per_s)},
          {"running_ms", idle ? json(nullptr) : json(ms_since(slot.started, now))}};
}

json slots_json(const std::optional<SlotsStatus>& slots, Clock::time_point now) {
  if (!slots) return nullptr;
  json out = {{"busy", slots->busy}, {"total", slots->total}, {"list", nullptr}, {"workers", nullptr}};
  if (slots->list) {
    out["list"] = json::array();
    for (const SlotView& slot : *slots->list) out["list"].push_back(slot_json(slot, now));
  }
  if (slots->workers) {
    out["workers"] = json::array();
    for (const WorkerSlots& w : *slots->workers) {
      out["workers"].push_back({{"worker", w.worker}, {"slots", w.slots}, {"busy", w.busy}});
    }
  }
  return out;
}

json latency_json(const LatencySummary& l) {
  return {{"window_s", l.window_s},
          {"count", l.count},
          {"ttft_ms", {{"p50", rounded(l.ttft_p50_ms)}, {"p95", rounded(l.ttft_p95_ms)}}},
          {"total_ms", {{"p50", rounded(l.total_p50_ms)}, {"p95", rounded(l.total_p95_ms)}}}};
}

// The p50 and p95 of a window, in milliseconds, or nothing when it is empty.
std::pair<std::optional<double>, std::optional<double>> window_ms(
    const telemetry::WindowQuantiles& window, std::uint64_t* count) {
  const auto snap = window.snapshot({0.5, 0.95});
  if (count != nullptr) *count = snap.window_count;
  if (snap.window_count == 0) return {};
  return {snap.values[0] * 1000, snap.values[1] * 1000};
}

}  // namespace

SlotsStatus local_slots(std::vector<SlotView> slots) {
  SlotsStatus out;
  out.total = static_cast<std::int64_t>(slots.size());
  for (const SlotView& slot : slots) out.busy += slot.job_id.empty() ? 0 : 1;
  out.list = std::move(slots);
  return out;
}

json status_json(const StatusInputs& in) {
  json models = json::array();
  for (const StatusModel& m : in.models) models.push_back({{"name", m.name}, {"loaded", m.loaded}});
  json refusals = json::object();
  for (const auto& [reason, n] : in.refusals) refusals[reason] = static_cast<std::int64_t>(n);
  return {{"time", telemetry::iso8601_ms(in.time)},
          {"uptime_s", std::round(in.uptime_s * 10) / 10},
          {"version", in.version},
          {"ready", in.ready},
          {"draining", in.draining},
          {"models", std::move(models)},
          {"queue", queue_json(in)},
          {"slots", slots_json(in.slots, in.now)},
          {"latency", latency_json(in.latency)},
          {"refusals", std::move(refusals)},
          {"process",
           {{"cpu_percent", rounded(in.cpu_percent)}, {"rss_bytes", optional_number(in.rss_bytes)}}}};
}

ServiceStatus::ServiceStatus(StatusSources sources)
    : sources_(std::move(sources)),
      started_(Clock::now()),
      ttft_(sources_.window),
      total_(sources_.window) {}

void ServiceStatus::observe(const telemetry::RequestRecord& record) {
  // Completed jobs only, as llmq_request_duration_window_seconds: a refusal or a client that
  // left took no work's time.
  if (record.finish_reason.empty() || !record.total_ms) return;
  total_.observe(static_cast<double>(*record.total_ms) / 1000);
  if (record.ttft_ms) ttft_.observe(static_cast<double>(*record.ttft_ms) / 1000);
}

std::optional<double> ServiceStatus::cpu_percent(std::optional<double> cpu_seconds,
                                                 Clock::time_point now) {
  if (!cpu_seconds) return std::nullopt;
  std::lock_guard lock(cpu_mu_);
  if (!cpu_seconds_at_) {  // the first reading: the average since this object began
    const double up = std::chrono::duration<double>(now - started_).count();
    cpu_percent_ = up > 0 ? 100 * *cpu_seconds / up : 0;
  } else if (now - cpu_read_at_ >= kCpuInterval) {
    const double wall = std::chrono::duration<double>(now - cpu_read_at_).count();
    cpu_percent_ = 100 * (*cpu_seconds - *cpu_seconds_at_) / wall;
  } else {
    return cpu_percent_;  // measured less than kCpuInterval ago: too short to mean much
  }
  cpu_seconds_at_ = cpu_seconds;
  cpu_read_at_ = now;
  return cpu_percent_;
}

StatusInputs ServiceStatus::inputs(const JobProducer& queue, const ModelCatalog* models,
                                   bool draining) {
  StatusInputs in;
  in.time = std::chrono::system_clock::now();
  in.now = Clock::now();
  in.uptime_s = std::chrono::duration<double>(in.now - started_).count();
  in.version = sources_.version;
  in.ready = models != nullptr && !draining;
  in.draining = draining;
  if (models != nullptr) {
    for (const ServedModel& m : models->all()) {
      const std::string& name = m.text->info().name;
      in.models.push_back({name, models->loaded(name)});
    }
  }
  in.depth = queue.depth();
  in.capacity = queue.capacity();
  in.waiting = queue.waiting(kStatusWaitingLimit + 1);  // one more tells that more wait
  in.waiting_truncated = in.waiting.size() > kStatusWaitingLimit;
  if (in.waiting_truncated) in.waiting.resize(kStatusWaitingLimit);
  if (sources_.slots) in.slots = sources_.slots();
  in.latency.window_s = std::chrono::duration<double>(sources_.window).count();
  std::tie(in.latency.ttft_p50_ms, in.latency.ttft_p95_ms) = window_ms(ttft_, nullptr);
  std::tie(in.latency.total_p50_ms, in.latency.total_p95_ms) = window_ms(total_, &in.latency.count);
  if (sources_.metrics != nullptr) in.refusals = sources_.metrics->rejections();
  const telemetry::ProcReading proc = telemetry::read_proc();
  in.cpu_percent = cpu_percent(proc.cpu_seconds, in.now);
  in.rss_bytes = proc.rss_bytes;
  return in;
}

json ServiceStatus::snapshot(const JobProducer& queue, const ModelCatalog* models,
                             bool draining) {
  return status_json(inputs(queue, models, draining));
}

}  // namespace llmq
