// The queue "LLM_INFERENCE" between admission and the workers, as its two sides.
//
// JobProducer is what the gateway holds: it submits jobs, takes back one that still waits, tells
// a job's place in line and the queue's depth, and asks whoever runs a job to stop it. JobConsumer
// is what a worker's scheduler holds: it takes the next job.
//
// Implementations: InProcessQueue (queue/in_process_queue.h) is both sides in one process, a
// bounded FIFO in memory. JetStreamQueue (queue/jetstream_queue.h) is the producer side over a
// NATS JetStream work-queue stream; a worker's JetStream consumer (queue/jetstream_worker.h)
// fills an InProcessQueue of its own, its local inbox. All methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "queue/job.h"

namespace llmq {

inline constexpr const char* kQueueName = "LLM_INFERENCE";

// A job that waits, as the live status page lists it: never its prompt or parameters.
struct WaitingJob {
  std::string id{};
  std::string model{};
  std::int64_t place = 0;       // as position(): the jobs ahead of it that it waits behind
  Clock::time_point arrived{};  // when the gateway admitted it (Job::arrived)
};

// unavailable: the queue's broker did not take the job (a JetStream outage); retry later.
enum class PushResult { accepted, full, closed, unavailable };

class JobProducer {
 public:
  virtual ~JobProducer() = default;

  // Appends a job unless the queue holds `capacity()` jobs already (full) or is closed.
  virtual PushResult push(JobPtr job) = 0;

  // Takes back a job that still waits (a client that left, a deadline that passed). False when
  // no worker can be kept from it any more: it runs, or it ended.
  virtual bool remove(const std::string& job_id) = 0;

  // Asks the worker running this job to stop it at its next decode step (it then ends with
  // finish_reason "cancelled"). The job's own flag (Job::cancel) is set by the caller first.
  virtual void stop(const Job& job) = 0;

  // Number of jobs ahead of this one (0 = next); nullopt once it is no longer waiting.
  virtual std::optional<std::int64_t> position(const std::string& job_id) const = 0;

  virtual std::int64_t depth() const = 0;
  virtual std::int64_t capacity() const = 0;

  // The waiting jobs, oldest first, at most `limit` of them (the oldest `limit`). A job another
  // producer queued (another gateway's, on JetStream) is not listed.
  virtual std::vector<WaitingJob> waiting(std::size_t limit) const = 0;
};

class JobConsumer {
 public:
  virtual ~JobConsumer() = default;

  // Takes the oldest job, waiting up to `timeout` for one. nullopt on timeout or once closed
  // and empty.
  virtual std::optional<JobPtr> pop(std::chrono::milliseconds timeout) = 0;
};

}  // namespace llmq
