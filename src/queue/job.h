// A Job is one admitted request travelling from the gateway through the queue to a worker.
//
// Ownership: shared (std::shared_ptr) between the HTTP connection that admitted it, the queue
// while it waits, and the worker while it runs. Thread safety: the immutable fields are set
// before the job is published; `cancel()` may be called from any thread; `sink` is called only
// by the worker that runs the job (after the queue handed it over), never concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "queue/request.h"
#include "queue/job_events.h"

namespace llmq {

using Clock = std::chrono::steady_clock;

// Receives a job's events from the worker. Implementations must return quickly and must not
// block (the worker's decode loop calls them): typically they post to an I/O executor.
class JobSink {
 public:
  virtual ~JobSink() = default;
  virtual void on_event(JobEvent event) = 0;
};

class Job {
 public:
  // `arrived`: when the gateway admitted it (a worker gives the admission time it was sent);
  // default now.
  Job(std::string id, ValidatedRequest request, std::optional<Clock::time_point> deadline,
      std::shared_ptr<JobSink> sink, std::optional<Clock::time_point> arrived = std::nullopt);

  const std::string& id() const { return id_; }
  const ValidatedRequest& request() const { return request_; }
  Clock::time_point arrived() const { return arrived_; }
  const std::optional<Clock::time_point>& deadline() const { return deadline_; }

  // Asks the job to stop: a waiting job is skipped, a running one ends at its next decode step
  // with finish_reason "cancelled". Idempotent, any thread.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

  // Sends an event to the client. Worker only (see the class comment), or whoever took the job
  // out of the queue so that no worker can have it (JobFollower, shutdown).
  void emit(JobEvent event) { sink_->on_event(std::move(event)); }

 private:
  const std::string id_;                                 // request id, unique per process
  const ValidatedRequest request_;                       // what to run
  const Clock::time_point arrived_;                      // when the gateway admitted it
  const std::optional<Clock::time_point> deadline_;      // whole-request deadline, queue included
  const std::shared_ptr<JobSink> sink_;                  // where its events go
  std::atomic<bool> cancelled_{false};                   // set by the client side on disconnect
};

using JobPtr = std::shared_ptr<Job>;

}  // namespace llmq
