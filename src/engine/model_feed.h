// ModelFeed: what a warm model's scheduler pops from in the warm pool (engine/model_pool.h). It
// hands out the jobs of the model's inbox, counting them and keeping the keep_alive of the last
// one, and can be paused: no job leaves the inbox through it until it is resumed. The pool pauses
// it to prove the model idle before unloading it (docs/architecture.md, "Choices").
//
// Thread safety: pop() from the scheduler's thread, the rest from the pool's keeper; queries
// from any thread. One mutex guards the state.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "queue/in_process_queue.h"

namespace llmq {

class ModelFeed final : public JobConsumer {
 public:
  // `default_keep_alive`: in force until a job that sets its own is taken, and after a job
  // that sets none.
  ModelFeed(InProcessQueue& inbox, std::chrono::milliseconds default_keep_alive);

  // The inbox's next job, unless paused or closed (then nothing, once `timeout` passed or at
  // once when closed).
  std::optional<JobPtr> pop(std::chrono::milliseconds timeout) override;

  // From now on no job leaves the inbox through this feed; returns once none is on its way
  // (within one slice of a pop, 10 ms).
  void pause();
  void resume();
  // For good: every pop returns nothing at once (the scheduler is about to stop).
  void close();

  std::uint64_t popped() const;                 // jobs handed out so far
  std::chrono::milliseconds keep_alive() const;  // of the last job handed out, or the default

 private:
  InProcessQueue& inbox_;
  const std::chrono::milliseconds default_keep_alive_;
  mutable std::mutex mu_;            // guards what follows
  std::condition_variable changed_;  // paused_, closed_ or popping_ changed
  bool paused_ = false;
  bool closed_ = false;
  int popping_ = 0;                  // pops inside inbox_.pop now
  std::uint64_t popped_ = 0;
  std::chrono::milliseconds keep_alive_;
};

}  // namespace llmq
