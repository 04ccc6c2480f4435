// JobQueue: the queue "LLM_INFERENCE" between admission and the workers.
//
// A bounded FIFO. Implementations: InProcessQueue (queue/in_process_queue.h), and later NATS
// JetStream for scale-out. All methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "queue/job.h"

namespace llmq {

inline constexpr const char* kQueueName = "LLM_INFERENCE";

enum class PushResult { accepted, full, closed };

class JobQueue {
 public:
  virtual ~JobQueue() = default;

  // Appends a job unless the queue holds `capacity()` jobs already (full) or is closed.
  virtual PushResult push(JobPtr job) = 0;

  // Takes the oldest job, waiting up to `timeout` for one. nullopt on timeout or once closed
  // and empty.
  virtual std::optional<JobPtr> pop(std::chrono::milliseconds timeout) = 0;

  // Removes a waiting job (a client that left). False if it is no longer waiting.
  virtual bool remove(const std::string& job_id) = 0;

  // Number of jobs ahead of this one (0 = next); nullopt once it is no longer waiting.
  // True at the moment of the call.
  virtual std::optional<std::int64_t> position(const std::string& job_id) const = 0;

  virtual std::int64_t depth() const = 0;
  virtual std::int64_t capacity() const = 0;

  // Refuses further pushes and wakes every pop; jobs still waiting stay poppable.
  virtual void close() = 0;
};

}  // namespace llmq
