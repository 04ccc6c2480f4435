// What the scheduler's tests share: a sink that records a job's events, a way to queue a job,
// and a fixture that runs a Scheduler over the FakeEngine.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/fake_engine.h"
#include "engine/scheduler.h"
#include "queue/in_process_queue.h"

namespace llmq {

using std::chrono::milliseconds;
using testing::FakeEngine;

// Collects a job's events, in order, for the test thread.
class RecordingSink final : public JobSink {
 public:
  void on_event(JobEvent event) override {
    std::lock_guard lock(mu_);
    const bool last = std::holds_alternative<DoneEvent>(event) ||
                      std::holds_alternative<ErrorEvent>(event);
    events_.push_back(std::move(event));
    if (last) {
      ended_ = true;
      cv_.notify_all();
    }
  }
  // Waits for done/error; false on timeout.
  bool wait_end(milliseconds timeout = milliseconds(5000)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return ended_; });
  }
  std::vector<JobEvent> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::string text() const {
    std::string out;
    for (const auto& e : events()) {
      if (auto* t = std::get_if<TokenEvent>(&e)) out += t->text;
    }
    return out;
  }
  template <class T>
  const T* last_as() const {
    std::lock_guard lock(mu_);
    return events_.empty() ? nullptr : std::get_if<T>(&events_.back());
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<JobEvent> events_;
  bool ended_ = false;
};

struct Submitted {
  JobPtr job;
  std::shared_ptr<RecordingSink> sink;
};

inline Submitted submit(JobProducer& q, const std::string& id, std::string prompt, int max_tokens,
                 std::vector<std::string> stop = {},
                 std::optional<Clock::time_point> deadline = std::nullopt) {
  ValidatedRequest r;
  r.params.max_tokens = max_tokens;
  r.params.stop = std::move(stop);
  r.prompt_tokens.assign(prompt.begin(), prompt.end());
  auto sink = std::make_shared<RecordingSink>();
  auto job = std::make_shared<Job>(id, std::move(r), deadline, sink);
  EXPECT_EQ(q.push(job), PushResult::accepted);
  return {job, sink};
}

class SchedulerTest : public ::testing::Test {
 protected:
  // Without prefill budgets unless a test sets them: the fake's instant steps would make the
  // prefill budget a matter of timing noise.
  void start(std::int32_t slots, std::int32_t ctx = 256, std::int32_t batch = 64,
             double stall_factor = 0, double prefill_slowdown = 0) {
    engine_ = std::make_unique<FakeEngine>(slots, ctx, batch);
    scheduler_ = std::make_unique<Scheduler>(
        *engine_, queue_,
        SchedulerOptions{.worker_id = "w-test", .decode_stall_factor = stall_factor,
                         .prefill_slowdown = prefill_slowdown});
  }
  void TearDown() override {
    if (scheduler_) scheduler_->stop();
  }
  // Runs a stream, then a prompt of `prompt_tokens` 'x' tokens arriving beside it (2 tokens to
  // answer), each step costing 2 ms plus 0.1 ms a prompt token; returns every decoded batch.
  std::vector<std::vector<BatchEntry>> prompt_beside_a_stream(std::size_t prompt_tokens) {
    engine_->set_costs(std::chrono::microseconds(2000), std::chrono::microseconds(100));
    auto running = submit(queue_, "running", "a", 1000);
    scheduler_->start();
    while (running.sink->events().size() < 20) std::this_thread::sleep_for(milliseconds(1));
    auto big = submit(queue_, "big", std::string(prompt_tokens, 'x'), 2);
    EXPECT_TRUE(big.sink->wait_end(milliseconds(20000)));
    running.job->cancel();
    EXPECT_TRUE(running.sink->wait_end());
    return engine_->batches();
  }
  InProcessQueue queue_{100};
  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace llmq
