// What a process and its host use, as the runtime documents carry it: CPU as a share of all
// cores (ECS *.cpu.pct, 0..1) over the span since the previous sample, memory now. A value that
// could not be read is nullopt. A plain value: workers send it in their heartbeats too.
#pragma once

#include <cstdint>
#include <optional>

namespace llmq::telemetry {

struct ResourceUse {
  std::optional<double> process_cpu_pct, host_cpu_pct;
  std::optional<std::int64_t> process_rss_bytes, host_memory_used_bytes;
};

}  // namespace llmq::telemetry
