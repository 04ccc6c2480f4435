// Process and host metrics, read from /proc when scraped (Linux only; a reading that fails is
// left out of the exposition rather than reported as 0).
//
// process_*: the standard names of Prometheus' client libraries. llmq_host_cpu_usage_ratio is
// the busy share of all CPUs since the previous scrape (since boot at the first one), so with one
// scraper it is the average over the scrape interval.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "telemetry/metrics.h"
#include "telemetry/resource_use.h"

namespace llmq::telemetry {

// The same /proc numbers as one reading, for the runtime snapshot documents (which compute their
// own rates between two readings). A value that could not be read is nullopt.
struct ProcReading {
  std::optional<double> cpu_seconds;  // process user + system
  std::optional<double> rss_bytes;
  std::optional<double> host_busy_jiffies, host_total_jiffies;  // all CPUs, since boot
  std::optional<double> host_memory_used_bytes;                 // MemTotal - MemAvailable
};
ProcReading read_proc();

// Takes readings of /proc and turns each into a ResourceUse since the one before. Not
// thread-safe: one sampling thread.
class ResourceSampler {
 public:
  // The kernel counts CPU time in ticks of 10 ms, so over a short span a share is mostly
  // rounding (one tick in 2 ms would read 500 %). A sample sooner than this after the one its
  // CPU shares start from has memory only, and the next sample's shares start there still.
  static constexpr double kMinCpuSpanSeconds = 0.5;

  ResourceSampler();  // the first reading: the first sample's rates start here
  ResourceUse sample();

 private:
  std::chrono::steady_clock::time_point prev_at_;
  ProcReading prev_;
};

class ProcessCollector final : public Collector {
 public:
  void collect(std::string& out) const override;

 private:
  void collect_process(std::string& out) const;
  void collect_host(std::string& out) const;

  mutable std::mutex mu_;               // guards the previous /proc/stat reading
  mutable std::uint64_t prev_busy_ = 0;  // jiffies
  mutable std::uint64_t prev_total_ = 0;
};

}  // namespace llmq::telemetry
