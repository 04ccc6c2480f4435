// Durations between two steady-clock instants, as the scheduler reports them.
#pragma once

#include <chrono>
#include <cstdint>

#include "queue/job.h"

namespace llmq {

inline std::int64_t ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

inline double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace llmq
