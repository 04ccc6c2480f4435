// StepTrace: one line of JSON per decode step, for finding where a step's time goes
// (`--step-trace FILE`; bench/steps.py sums a trace up). Off unless asked for: a step costs
// milliseconds, a line a few microseconds.
//
// A line: {"model","t_ms" (since the trace opened),"gen" (sequences generating),"prompt"
// (prompt tokens),"prefilling" (sequences with prompt tokens in the step),"wait_ms" (before the
// step: taking jobs, waiting for them when idle, building the batch),"decode_ms" (llama.cpp),
// "sample_ms" (sampling, log-probabilities, detokenizing, stop strings and handing the events
// over), "sampled" (sequences sampled)}.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>

#include "queue/job.h"

namespace llmq {

struct StepRecord {
  std::size_t generating = 0;
  std::size_t prompt_tokens = 0;
  std::size_t prefilling = 0;
  std::size_t sampled = 0;
  double wait_ms = 0;
  double decode_ms = 0;
  double sample_ms = 0;
};

class StepTrace {
 public:
  // Opens (truncates) `path`; throws std::runtime_error when it cannot.
  explicit StepTrace(const std::string& path);
  ~StepTrace();
  StepTrace(const StepTrace&) = delete;
  StepTrace& operator=(const StepTrace&) = delete;

  // Any thread (each model's scheduler writes its own lines).
  void write(const std::string& model, const StepRecord& step);

 private:
  std::mutex mutex_;
  std::FILE* file_;
  Clock::time_point opened_ = Clock::now();
};

}  // namespace llmq
