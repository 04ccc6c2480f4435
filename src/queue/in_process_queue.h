// InProcessQueue: the embedded LLM_INFERENCE queue, a bounded FIFO in memory.
//
// Thread safety: every method may be called from any thread; one mutex guards the state.
// Positions are answered in O(log n): jobs carry an increasing sequence number and the deque
// stays sorted by it, since jobs only ever join at the back.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "queue/job_queue.h"

namespace llmq {

class InProcessQueue final : public JobProducer, public JobConsumer {
 public:
  explicit InProcessQueue(std::int64_t capacity);

  PushResult push(JobPtr job) override;
  std::optional<JobPtr> pop(std::chrono::milliseconds timeout) override;
  bool remove(const std::string& job_id) override;
  // In one process the job's own flag reaches the scheduler: nothing more to send.
  void stop(const Job&) override {}
  std::optional<std::int64_t> position(const std::string& job_id) const override;
  std::int64_t depth() const override;
  std::int64_t capacity() const override { return capacity_; }
  std::vector<WaitingJob> waiting(std::size_t limit) const override;
  // Refuses further pushes and wakes every pop; jobs still waiting stay poppable.
  void close();
  // Calls `visit` with every waiting job, oldest first, under the queue's lock: no job can be
  // popped or removed meanwhile, so an event `visit` emits reaches a job before any worker's or
  // remover's does (Job::emit's rule). `visit` must be quick and must not call this queue.
  void for_each_waiting(const std::function<void(const JobPtr&)>& visit) const;

 private:
  struct Entry {
    std::uint64_t seq;  // arrival order
    JobPtr job;
  };
  // Index of the entry for `job_id`, or -1. Caller holds mu_.
  std::int64_t find_locked(const std::string& job_id) const;

  const std::int64_t capacity_;        // most jobs waiting at once
  mutable std::mutex mu_;              // guards everything below
  std::condition_variable nonempty_;   // signalled on push and close
  std::deque<Entry> waiting_;          // oldest first, so sorted by seq
  std::unordered_map<std::string, std::uint64_t> seq_of_;  // job id -> seq, for waiting jobs
  std::uint64_t next_seq_ = 0;         // sequence number of the next push
  bool closed_ = false;                // no more pushes
};

}  // namespace llmq
