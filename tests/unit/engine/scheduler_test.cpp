#include "engine/scheduler.h"
#include "telemetry/service_metrics.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <condition_variable>
#include <mutex>

#include "engine/fake_engine.h"
#include "queue/in_process_queue.h"

namespace llmq {
namespace {

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

Submitted submit(JobQueue& q, const std::string& id, std::string prompt, int max_tokens,
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
  // Without a stall factor unless a test sets one: the fake's instant steps would make the
  // prefill budget a matter of timing noise.
  void start(std::int32_t slots, std::int32_t ctx = 256, std::int32_t batch = 64,
             double stall_factor = 0) {
    engine_ = std::make_unique<FakeEngine>(slots, ctx, batch);
    scheduler_ = std::make_unique<Scheduler>(
        *engine_, queue_, SchedulerOptions{.worker_id = "w-test", .decode_stall_factor = stall_factor});
  }
  void TearDown() override {
    if (scheduler_) scheduler_->stop();
  }
  InProcessQueue queue_{100};
  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, StreamsStartedTokensAndDoneWithUsage) {
  start(1);
  auto a = submit(queue_, "a", "ab", 5);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  const auto events = a.sink->events();
  ASSERT_TRUE(std::holds_alternative<StartedEvent>(events.front()));
  EXPECT_EQ(std::get<StartedEvent>(events.front()).worker, "w-test");
  EXPECT_EQ(std::get<StartedEvent>(events.front()).attempt, 1);
  // Prompt "ab" ends in 'b' (98): the fake predicts 99, 100, ... whose pieces are letters.
  EXPECT_EQ(a.sink->text(), "vwxyz");
  const auto* done = a.sink->last_as<DoneEvent>();
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->finish_reason, "length");
  EXPECT_EQ(done->usage.prompt_tokens, 2);
  EXPECT_EQ(done->usage.completion_tokens, 5);
  std::int64_t i = 0;
  for (const auto& e : events) {
    if (auto* t = std::get_if<TokenEvent>(&e)) {
      EXPECT_EQ(t->index, i++);
    }
  }
}

TEST_F(SchedulerTest, RunningSequencesShareEveryDecodeStep) {
  start(2);
  auto a = submit(queue_, "a", "a", 20);
  auto b = submit(queue_, "b", "b", 20);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  ASSERT_TRUE(b.sink->wait_end());
  int both = 0;
  for (const auto& batch : engine_->batches()) {
    std::set<std::int32_t> slots;
    for (const auto& e : batch) slots.insert(e.slot);
    if (slots.size() == 2) ++both;
  }
  // Both generate 20 tokens in lock-step: nearly every step carries both sequences.
  EXPECT_GE(both, 19);
}

TEST_F(SchedulerTest, AFreedSlotTakesTheNextJobWhileOthersStillRun) {
  start(2);
  auto shortjob = submit(queue_, "short", "a", 3);
  auto longjob = submit(queue_, "long", "b", 60);
  auto waiting = submit(queue_, "waiting", "Z", 3);  // 'Z' (90) is decoded by no other job
  scheduler_->start();
  ASSERT_TRUE(waiting.sink->wait_end());
  ASSERT_TRUE(longjob.sink->wait_end());
  EXPECT_EQ(longjob.sink->last_as<DoneEvent>()->usage.completion_tokens, 60);
  const auto batches = engine_->batches();
  std::size_t waiting_prefill = batches.size();
  for (std::size_t i = 0; i < batches.size() && waiting_prefill == batches.size(); ++i) {
    for (const auto& e : batches[i]) {
      if (e.token == 'Z') waiting_prefill = i;
    }
  }
  // The waiting job was prefilled right after the short one ended (step 4), long before the
  // long job's last step: continuous batching, not batch-by-batch.
  EXPECT_LE(waiting_prefill, 5u);
  EXPECT_GT(batches.size(), 50u);
  // A job's end keeps its slot's KV cells for the next job with the same prefix.
  EXPECT_TRUE(engine_->cleared().empty());
  EXPECT_EQ(engine_->truncated().size(), 1u);  // the waiting job replaced the short one's cells
}

TEST_F(SchedulerTest, LongPromptIsPrefilledInChunksWithoutStallingAGeneratingSequence) {
  start(2, 512, 16);
  auto running = submit(queue_, "running", "a", 40);
  scheduler_->start();
  // Let the first sequence start generating, then a long prompt arrives.
  while (running.sink->events().size() < 3) std::this_thread::sleep_for(milliseconds(1));
  auto big = submit(queue_, "big", std::string(100, 'x'), 2);
  ASSERT_TRUE(big.sink->wait_end());
  ASSERT_TRUE(running.sink->wait_end());
  int prefill_steps = 0;
  for (const auto& batch : engine_->batches()) {
    EXPECT_LE(batch.size(), 16u);
    bool has_prefill = false, has_running = false;
    for (const auto& e : batch) {
      if (e.slot == 1 && !e.logits) has_prefill = true;
      if (e.slot == 0) has_running = true;
    }
    if (has_prefill) {
      ++prefill_steps;
      EXPECT_TRUE(has_running) << "a prefill step left the running sequence out";
    }
  }
  EXPECT_GE(prefill_steps, 100 / 16);
}

TEST_F(SchedulerTest, CancelledRunningJobEndsAsCancelledAndFreesItsSlot) {
  start(1, 1 << 30);  // a context that never fills
  auto a = submit(queue_, "a", "a", 100000);
  auto b = submit(queue_, "b", "b", 3);
  scheduler_->start();
  while (a.sink->events().size() < 5) std::this_thread::sleep_for(milliseconds(1));
  a.job->cancel();
  ASSERT_TRUE(a.sink->wait_end());
  EXPECT_EQ(a.sink->last_as<DoneEvent>()->finish_reason, "cancelled");
  ASSERT_TRUE(b.sink->wait_end());
  EXPECT_EQ(b.sink->last_as<DoneEvent>()->finish_reason, "length");
}

TEST_F(SchedulerTest, JobCancelledWhileWaitingNeverStarts) {
  start(1);
  auto a = submit(queue_, "a", "a", 3);
  a.job->cancel();
  auto b = submit(queue_, "b", "b", 3);
  scheduler_->start();
  ASSERT_TRUE(b.sink->wait_end());
  EXPECT_TRUE(a.sink->events().empty());
}

TEST_F(SchedulerTest, DeadlinePassedInQueueIsAnErrorWithoutStarting) {
  start(1);
  auto a = submit(queue_, "a", "a", 3, {}, Clock::now() - milliseconds(1));
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  ASSERT_EQ(a.sink->events().size(), 1u);
  EXPECT_EQ(a.sink->last_as<ErrorEvent>()->code, "deadline_exceeded");
}

TEST_F(SchedulerTest, RunningJobStopsAtItsDeadline) {
  start(1, 1 << 30);  // a context that never fills
  auto a = submit(queue_, "a", "a", 100000000, {}, Clock::now() + milliseconds(50));
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  EXPECT_EQ(a.sink->last_as<ErrorEvent>()->code, "deadline_exceeded");
}

TEST_F(SchedulerTest, EndOfGenerationTokenFinishesWithStopAndIsNotSent) {
  start(1);
  engine_->set_end_of_generation('d');
  auto a = submit(queue_, "a", "a", 50);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  EXPECT_EQ(a.sink->last_as<DoneEvent>()->finish_reason, "stop");
  EXPECT_EQ(a.sink->text(), "uv");  // 'b' -> "u", 'c' -> "v", then 'd' ends it
}

TEST_F(SchedulerTest, StopStringCutsTheText) {
  start(1);
  auto a = submit(queue_, "a", "a", 50, {"wx"});
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  EXPECT_EQ(a.sink->last_as<DoneEvent>()->finish_reason, "stop");
  EXPECT_EQ(a.sink->text(), "uv");  // "u", "v", then "w" "x" is the stop string
}

TEST_F(SchedulerTest, MultiByteCharacterSplitAcrossTokensArrivesWhole) {
  start(1);
  engine_->set_piece('b', "\xE2\x82");
  engine_->set_piece('c', "\xAC!");
  auto a = submit(queue_, "a", "a", 2);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  for (const auto& e : a.sink->events()) {
    if (auto* t = std::get_if<TokenEvent>(&e)) {
      EXPECT_EQ(t->text, "\xE2\x82\xAC!");
    }
  }
}

TEST_F(SchedulerTest, ContextFullFinishesWithLength) {
  start(1, 8);
  auto a = submit(queue_, "a", "abcde", 1000);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  EXPECT_EQ(a.sink->last_as<DoneEvent>()->finish_reason, "length");
  EXPECT_EQ(a.sink->last_as<DoneEvent>()->usage.completion_tokens, 4);  // 5 + 4 - 1 decoded <= 8
}

TEST_F(SchedulerTest, DecodeFailureFailsTheBatchAndTheWorkerGoesOn) {
  start(1);
  scheduler_ = std::make_unique<Scheduler>(*engine_, queue_,
                                           SchedulerOptions{.worker_id = "w-test", .max_attempts = 1});
  engine_->fail_next_decodes(1);
  auto a = submit(queue_, "a", "a", 3);
  auto b = submit(queue_, "b", "b", 3);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  EXPECT_EQ(a.sink->last_as<ErrorEvent>()->code, "engine_failure");
  ASSERT_TRUE(b.sink->wait_end());
  EXPECT_EQ(b.sink->last_as<DoneEvent>()->finish_reason, "length");
}

std::vector<int> started_attempts(const RecordingSink& sink) {
  std::vector<int> out;
  for (const auto& e : sink.events())
    if (const auto* started = std::get_if<StartedEvent>(&e)) out.push_back(started->attempt);
  return out;
}

class RetryTest : public SchedulerTest {
 protected:
  void start_with_retries(int max_attempts, std::int32_t ctx = 256) {
    engine_ = std::make_unique<FakeEngine>(1, ctx, 64);
    scheduler_ = std::make_unique<Scheduler>(
        *engine_, queue_,
        SchedulerOptions{.worker_id = "w-test", .metrics = &metrics_, .max_attempts = max_attempts,
                         .backoff_initial = milliseconds(1), .backoff_max = milliseconds(5)});
  }
  telemetry::ServiceMetrics metrics_;
};

TEST_F(RetryTest, ATransientDecodeFailureIsRetriedAndTheAttemptShows) {
  start_with_retries(3);
  engine_->fail_next_decodes(1);
  auto a = submit(queue_, "a", "a", 4);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  EXPECT_EQ(a.sink->last_as<DoneEvent>()->usage.completion_tokens, 4);
  EXPECT_EQ(started_attempts(*a.sink), (std::vector<int>{1, 2}));
  EXPECT_EQ(metrics_.job_retries().value(), 1);
  EXPECT_EQ(metrics_.dead_lettered().value(), 0);
  EXPECT_EQ(scheduler_->busy_slots(), 0);
}

TEST_F(RetryTest, AJobOutOfAttemptsIsDeadLettered) {
  start_with_retries(3);
  engine_->fail_next_decodes(1000);
  auto a = submit(queue_, "a", "a", 4);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  const auto* error = a.sink->last_as<ErrorEvent>();
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->code, "engine_failure");
  EXPECT_NE(error->message.find("gave up after 3 attempts"), std::string::npos) << error->message;
  EXPECT_EQ(started_attempts(*a.sink), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(metrics_.job_retries().value(), 2);
  EXPECT_EQ(metrics_.dead_lettered().value(), 1);
}

TEST_F(RetryTest, AJobThatAlreadySentTokensIsNotRetried) {
  start_with_retries(3, 1 << 30);  // a context that never fills: the job runs until it fails
  auto a = submit(queue_, "a", "a", 100000);
  scheduler_->start();
  while (std::ranges::none_of(a.sink->events(), [](const JobEvent& e) {
    return std::holds_alternative<TokenEvent>(e);
  }))
    std::this_thread::sleep_for(milliseconds(1));
  engine_->fail_next_decodes(1);
  ASSERT_TRUE(a.sink->wait_end());
  const auto* error = a.sink->last_as<ErrorEvent>();
  ASSERT_NE(error, nullptr);
  EXPECT_NE(error->message.find("not retried"), std::string::npos) << error->message;
  EXPECT_EQ(started_attempts(*a.sink), (std::vector<int>{1}));
  EXPECT_EQ(metrics_.job_retries().value(), 0);
}

TEST_F(RetryTest, OtherJobsRunWhileOneWaitsOutItsBackoff) {
  engine_ = std::make_unique<FakeEngine>(1, 256, 64);
  scheduler_ = std::make_unique<Scheduler>(
      *engine_, queue_,
      SchedulerOptions{.worker_id = "w-test", .metrics = &metrics_, .max_attempts = 2,
                       .backoff_initial = milliseconds(300), .backoff_max = milliseconds(300)});
  engine_->fail_next_decodes(1);
  auto a = submit(queue_, "a", "a", 3);
  auto b = submit(queue_, "b", "b", 3);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  ASSERT_TRUE(b.sink->wait_end());
  EXPECT_NE(a.sink->last_as<DoneEvent>(), nullptr);
  EXPECT_NE(b.sink->last_as<DoneEvent>(), nullptr);
}

TEST_F(SchedulerTest, StopEndsRunningJobsWithShuttingDown) {
  start(1, 1 << 30);  // a context that never fills
  auto a = submit(queue_, "a", "a", 100000000);
  scheduler_->start();
  while (a.sink->events().size() < 3) std::this_thread::sleep_for(milliseconds(1));
  scheduler_->stop();
  ASSERT_TRUE(a.sink->wait_end(milliseconds(0)));
  EXPECT_EQ(a.sink->last_as<ErrorEvent>()->code, "shutting_down");
  EXPECT_EQ(scheduler_->busy_slots(), 0);
}



// --- prefix cache ---

// The batch entries of one slot's prompt tokens, in order.
std::vector<BatchEntry> entries_with_token(const std::vector<std::vector<BatchEntry>>& batches,
                                           Token token) {
  std::vector<BatchEntry> out;
  for (const auto& batch : batches) {
    for (const auto& e : batch) {
      if (e.token == token) out.push_back(e);
    }
  }
  return out;
}

TEST_F(SchedulerTest, APrefixSharedWithAFinishedJobIsNotPrefilledAgain) {
  start(1);
  auto first = submit(queue_, "first", "SYSTEM PROMPT: one", 2);
  scheduler_->start();
  ASSERT_TRUE(first.sink->wait_end());
  EXPECT_EQ(first.sink->last_as<DoneEvent>()->usage.cached_tokens, 0);
  const std::size_t before = engine_->batches().size();
  auto second = submit(queue_, "second", "SYSTEM PROMPT: two", 2);
  ASSERT_TRUE(second.sink->wait_end());
  const auto* done = second.sink->last_as<DoneEvent>();
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->usage.cached_tokens, 15);  // "SYSTEM PROMPT: "
  EXPECT_EQ(done->usage.prompt_tokens, 18);
  // Only "two" was decoded, from position 15 on.
  const auto batches = engine_->batches();
  const BatchEntry& first_entry = batches.at(before).front();
  EXPECT_EQ(first_entry.token, 't');
  EXPECT_EQ(first_entry.pos, 15);
  std::size_t prompt_entries = 0;
  for (std::size_t i = before; i < batches.size(); ++i) {
    for (const auto& e : batches[i]) prompt_entries += e.logits ? 0 : 1;
  }
  EXPECT_EQ(prompt_entries, 2u);  // 't', 'w'; 'o' is the last, with logits
  EXPECT_EQ(engine_->truncated().back(), (std::pair<std::int32_t, std::int32_t>{0, 15}));
}

TEST_F(SchedulerTest, AnIdenticalPromptReusesAllButItsLastTokenAndAnswersTheSame) {
  start(1);
  auto first = submit(queue_, "first", "hello world", 6);
  scheduler_->start();
  ASSERT_TRUE(first.sink->wait_end());
  auto again = submit(queue_, "again", "hello world", 6);
  ASSERT_TRUE(again.sink->wait_end());
  EXPECT_EQ(again.sink->last_as<DoneEvent>()->usage.cached_tokens, 10);
  EXPECT_EQ(again.sink->text(), first.sink->text());
}

TEST_F(SchedulerTest, AJobTakesTheFreeSlotThatCachesItsPrefix) {
  start(2);
  // The fake answers 'j' with 'k' and 'q' with 'r': the letters say whose prompt an entry is.
  auto x = submit(queue_, "x", "jjjjjjjj1", 2);
  auto y = submit(queue_, "y", "qqqqqqqq1", 2);
  scheduler_->start();
  ASSERT_TRUE(x.sink->wait_end());
  ASSERT_TRUE(y.sink->wait_end());
  const std::int32_t y_slot = entries_with_token(engine_->batches(), 'q').front().slot;
  for (int round = 0; round < 3; ++round) {
    const std::size_t before = engine_->batches().size();
    auto again = submit(queue_, "y2", "qqqqqqqq2", 2);
    ASSERT_TRUE(again.sink->wait_end());
    EXPECT_EQ(again.sink->last_as<DoneEvent>()->usage.cached_tokens, 8);
    EXPECT_EQ(engine_->batches().at(before).front().slot, y_slot);
  }
  // The other slot's cache was never needed, so it is still there for an 'x' prompt.
  auto x2 = submit(queue_, "x2", "jjjjjjjj2", 2);
  ASSERT_TRUE(x2.sink->wait_end());
  EXPECT_EQ(x2.sink->last_as<DoneEvent>()->usage.cached_tokens, 8);
}

TEST_F(SchedulerTest, APromptSharingNothingTakesAnEmptySlotBeforeACachedOne) {
  start(2);
  auto a = submit(queue_, "a", "jjjjjjjj", 2);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  const std::int32_t a_slot = entries_with_token(engine_->batches(), 'j').front().slot;
  auto b = submit(queue_, "b", "qqqqqqqq", 2);
  ASSERT_TRUE(b.sink->wait_end());
  EXPECT_NE(entries_with_token(engine_->batches(), 'q').front().slot, a_slot);
  auto a2 = submit(queue_, "a2", "jjjjjjjj", 2);
  ASSERT_TRUE(a2.sink->wait_end());
  EXPECT_EQ(a2.sink->last_as<DoneEvent>()->usage.cached_tokens, 7);
}

TEST_F(SchedulerTest, CachedPromptTokensAreCounted) {
  telemetry::ServiceMetrics metrics;
  engine_ = std::make_unique<FakeEngine>(1, 256, 64);
  scheduler_ = std::make_unique<Scheduler>(
      *engine_, queue_, SchedulerOptions{.worker_id = "w", .metrics = &metrics, .decode_stall_factor = 0});
  auto first = submit(queue_, "first", "shared prefix A", 2);
  scheduler_->start();
  ASSERT_TRUE(first.sink->wait_end());
  auto second = submit(queue_, "second", "shared prefix B", 2);
  ASSERT_TRUE(second.sink->wait_end());
  const std::string text = metrics.expose();
  EXPECT_NE(text.find("llmq_prompt_cache_hit_tokens_total{model=\"fake\"} 14"), std::string::npos)
      << text;
  EXPECT_NE(text.find("llmq_prompt_tokens_total{model=\"fake\"} 30"), std::string::npos) << text;
}

TEST_F(SchedulerTest, AFailedDecodeForgetsTheSlotsCache) {
  start(1);
  auto first = submit(queue_, "first", "abcdef", 2);
  scheduler_->start();
  ASSERT_TRUE(first.sink->wait_end());
  engine_->fail_next_decodes(1);
  auto second = submit(queue_, "second", "abcdeg", 2);
  ASSERT_TRUE(second.sink->wait_end());
  const auto* done = second.sink->last_as<DoneEvent>();
  ASSERT_NE(done, nullptr) << "the retry should have succeeded";
  EXPECT_EQ(done->usage.cached_tokens, 0);  // the second run prefilled everything again
  EXPECT_EQ(engine_->cleared(), std::vector<std::int32_t>{0});
}

TEST_F(SchedulerTest, TokenEventsCarryTheirSamplingTime) {
  start(1);
  const Clock::time_point before = Clock::now();
  auto a = submit(queue_, "a", "ab", 3);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  int tokens = 0;
  for (const auto& e : a.sink->events()) {
    if (const auto* t = std::get_if<TokenEvent>(&e)) {
      EXPECT_GE(t->sampled, before);
      EXPECT_LE(t->sampled, Clock::now());
      ++tokens;
    }
  }
  EXPECT_EQ(tokens, 3);
}

TEST_F(SchedulerTest, APrefixAnotherSlotHoldsIsCopiedInsteadOfPrefilled) {
  start(2, 1024, 512);
  const std::string system(100, 's');
  auto running = submit(queue_, "running", system + "first question", 300);
  scheduler_->start();
  while (running.sink->events().size() < 5) std::this_thread::sleep_for(milliseconds(1));
  const std::size_t before = engine_->batches().size();
  auto second = submit(queue_, "second", system + "other", 2);
  ASSERT_TRUE(second.sink->wait_end());
  running.job->cancel();
  ASSERT_TRUE(running.sink->wait_end());
  EXPECT_EQ(second.sink->last_as<DoneEvent>()->usage.cached_tokens, 100);
  const auto copies = engine_->copies();
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].from, 0);
  EXPECT_EQ(copies[0].to, 1);
  EXPECT_EQ(copies[0].keep, 100);
  // Slot 1 prefilled "other" only, from position 100.
  std::size_t prefilled = 0;
  const auto batches = engine_->batches();
  for (std::size_t i = before; i < batches.size(); ++i) {
    for (const auto& e : batches[i]) {
      if (e.slot != 1) continue;
      if (prefilled == 0) {
        EXPECT_EQ(e.pos, 100);
      }
      ++prefilled;
    }
  }
  EXPECT_EQ(prefilled, 5u + 1u);  // "other", then the one generated token fed back
}

TEST_F(SchedulerTest, AShortSharedPrefixIsPrefilledRatherThanCopied) {
  start(2, 1024, 512);
  auto running = submit(queue_, "running", std::string(20, 's') + "a", 300);
  scheduler_->start();
  while (running.sink->events().size() < 5) std::this_thread::sleep_for(milliseconds(1));
  auto second = submit(queue_, "second", std::string(20, 's') + "b", 2);
  ASSERT_TRUE(second.sink->wait_end());
  running.job->cancel();
  ASSERT_TRUE(running.sink->wait_end());
  EXPECT_TRUE(engine_->copies().empty());
  EXPECT_EQ(second.sink->last_as<DoneEvent>()->usage.cached_tokens, 0);
}

// --- chunked prefill under the stall factor ---

TEST_F(SchedulerTest, WhileOthersGenerateAPromptIsPrefilledInChunksThatKeepStepsShort) {
  // A step costs 2 ms plus 0.1 ms per prompt token: with factor 2, about 20 prompt tokens fit
  // in a step beside the running stream; a whole batch (512) would stretch it 26 times.
  start(2, 4096, 512, 2.0);
  engine_->set_costs(std::chrono::microseconds(2000), std::chrono::microseconds(100));
  auto running = submit(queue_, "running", "a", 400);
  scheduler_->start();
  while (running.sink->events().size() < 20) std::this_thread::sleep_for(milliseconds(1));
  auto big = submit(queue_, "big", std::string(600, 'x'), 2);
  ASSERT_TRUE(big.sink->wait_end(milliseconds(20000)));
  running.job->cancel();
  ASSERT_TRUE(running.sink->wait_end());
  std::size_t mixed = 0, oversized = 0;
  for (const auto& batch : engine_->batches()) {
    std::size_t prompt = 0;
    bool generating = false;
    for (const auto& e : batch) {
      if (e.slot == 1 && e.token == 'x') ++prompt;
      if (e.slot == 0) generating = true;
    }
    if (prompt == 0 || !generating) continue;
    ++mixed;
    if (prompt > 64) ++oversized;  // generous: timing noise may stretch one estimate
  }
  EXPECT_GE(mixed, 600u / 64);
  EXPECT_LE(oversized, 1u);
}

TEST_F(SchedulerTest, WithNobodyGeneratingAPromptTakesWholeBatches) {
  start(1, 4096, 512, 2.0);
  engine_->set_costs(std::chrono::microseconds(500), std::chrono::microseconds(10));
  auto big = submit(queue_, "big", std::string(1000, 'x'), 1);
  scheduler_->start();
  ASSERT_TRUE(big.sink->wait_end());
  const auto batches = engine_->batches();
  ASSERT_GE(batches.size(), 2u);
  EXPECT_EQ(batches[0].size(), 512u);
  EXPECT_EQ(batches[1].size(), 488u);
}

}  // namespace
}  // namespace llmq
