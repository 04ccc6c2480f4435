// ModelQueues: the in-process LLM_INFERENCE queue of a service that serves several models. One
// InProcessQueue per model, its partition, which that model's scheduler pops from (through the
// warm pool: engine/model_pool.h), under one capacity, --queue-max, over all of them.
//
// A job joins its model's partition (ValidatedRequest::model). Its position counts the jobs
// ahead of it in that partition only: those are the ones it waits behind. depth() is the total.
//
// Thread safety: every method may be called from any thread. Pushes are serialized by one mutex,
// so that checking the total against the capacity and pushing are one step; the schedulers pop
// from the partitions directly, which only ever lowers the total.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "queue/in_process_queue.h"

namespace llmq {

class ModelQueues final : public JobProducer {
 public:
  // `models`: the served models' names, not empty, no two alike (else std::invalid_argument).
  // `on_push`: called with the model's name after each accepted push (to wake the warm pool);
  // may be null.
  ModelQueues(const std::vector<std::string>& models, std::int64_t capacity,
              std::function<void(const std::string& model)> on_push = nullptr);

  // Full when `capacity()` jobs wait over all the partitions. A job for a model not served here
  // is a caller's bug (admission resolves the model first): std::invalid_argument.
  PushResult push(JobPtr job) override;
  bool remove(const std::string& job_id) override;
  // In one process the job's own flag reaches the scheduler: nothing more to send.
  void stop(const Job&) override {}
  std::optional<std::int64_t> position(const std::string& job_id) const override;
  std::int64_t depth() const override;
  std::int64_t capacity() const override { return capacity_; }
  // Over every partition, oldest first by admission time; a job's place counts its partition's.
  std::vector<WaitingJob> waiting(std::size_t limit) const override;

  // The partition of a served model (std::out_of_range for another name). It outlives nothing:
  // it lives as long as this object.
  InProcessQueue& partition(const std::string& model) const;
  const std::vector<std::string>& models() const { return models_; }

  // Refuses further pushes and wakes every pop; waiting jobs stay poppable.
  void close();
  // Takes every waiting job out of every partition, oldest first within each: no worker can
  // have them any more, and the caller owes each its last event (at shutdown, after close()).
  std::vector<JobPtr> drain();

 private:
  const std::int64_t capacity_;     // most jobs waiting at once, over all the partitions
  const std::vector<std::string> models_;  // in the order given
  // One queue per model; the map is fixed at construction, so lookups need no lock.
  std::map<std::string, std::unique_ptr<InProcessQueue>, std::less<>> partitions_;
  const std::function<void(const std::string&)> on_push_;
  std::mutex push_mu_;              // makes check-and-push one step; guards closed_
  bool closed_ = false;             // no more pushes
};

}  // namespace llmq
