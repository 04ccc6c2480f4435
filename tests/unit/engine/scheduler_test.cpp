#include "engine/scheduler.h"
#include "telemetry/service_metrics.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <condition_variable>
#include <mutex>

#include "engine/fake_engine.h"
#include "engine/scheduler_fixture.h"
#include "queue/in_process_queue.h"

namespace llmq {
namespace {

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

TEST_F(SchedulerTest, JobCancelledWhileWaitingNeverStartsButEnds) {
  start(1);
  auto a = submit(queue_, "a", "a", 3);
  a.job->cancel();
  auto b = submit(queue_, "b", "b", 3);
  scheduler_->start();
  ASSERT_TRUE(b.sink->wait_end());
  // No started, no tokens: one last event, so that nothing attached to the job waits forever.
  ASSERT_EQ(a.sink->events().size(), 1u);
  EXPECT_EQ(a.sink->last_as<ErrorEvent>()->code, "cancelled");
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

}  // namespace
}  // namespace llmq

namespace llmq {
namespace {

Submitted submit_with_logprobs(JobProducer& q, std::string prompt, int max_tokens, std::int32_t top) {
  ValidatedRequest r;
  r.params.max_tokens = max_tokens;
  r.params.top_logprobs = top;
  r.prompt_tokens.assign(prompt.begin(), prompt.end());
  auto sink = std::make_shared<RecordingSink>();
  auto job = std::make_shared<Job>("lp", std::move(r), std::nullopt, sink);
  EXPECT_EQ(q.push(job), PushResult::accepted);
  return {job, sink};
}

TEST_F(SchedulerTest, LogprobsGoWithTheTextOfTheirTokens) {
  start(1);
  engine_->set_piece('b', "\xE2\x82");  // "€" split over two tokens: one event, two entries
  engine_->set_piece('c', "\xAC!");
  engine_->set_end_of_generation('d');
  auto a = submit_with_logprobs(queue_, "a", 50, 2);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  const std::vector<JobEvent> events = a.sink->events();
  std::vector<const TokenEvent*> tokens;
  for (const auto& e : events) {
    if (auto* t = std::get_if<TokenEvent>(&e)) tokens.push_back(t);
  }
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0]->text, "\xE2\x82\xAC!");
  ASSERT_EQ(tokens[0]->logprobs.size(), 2u);  // the end-of-generation token has none
  EXPECT_EQ(tokens[0]->logprobs[0].token, "\xE2\x82");
  EXPECT_EQ(tokens[0]->logprobs[1].token, "\xAC!");
  EXPECT_DOUBLE_EQ(tokens[0]->logprobs[1].logprob, -0.5);
  ASSERT_EQ(tokens[0]->logprobs[1].top.size(), 2u);
  EXPECT_EQ(tokens[0]->logprobs[1].top[0].token, "\xAC!");
  EXPECT_DOUBLE_EQ(tokens[0]->logprobs[1].top[1].logprob, -2.0);
}

TEST_F(SchedulerTest, NoLogprobsUnlessAsked) {
  start(1);
  auto a = submit(queue_, "a", "a", 3);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  for (const auto& e : a.sink->events()) {
    if (auto* t = std::get_if<TokenEvent>(&e)) {
      EXPECT_TRUE(t->logprobs.empty());
    }
  }
}

}  // namespace
}  // namespace llmq

namespace llmq {
namespace {

Submitted submit_embedding(JobProducer& q, const std::string& id,
                           std::vector<std::vector<Token>> inputs) {
  ValidatedRequest r;
  r.params.dialect = Dialect::openai_embedding;
  r.embed_tokens = std::move(inputs);
  auto sink = std::make_shared<RecordingSink>();
  auto job = std::make_shared<Job>(id, std::move(r), std::nullopt, sink);
  EXPECT_EQ(q.push(job), PushResult::accepted);
  return {job, sink};
}

std::vector<EmbeddingEvent> embeddings_of(const RecordingSink& sink) {
  std::vector<EmbeddingEvent> out;
  for (const auto& e : sink.events()) {
    if (auto* v = std::get_if<EmbeddingEvent>(&e)) out.push_back(*v);
  }
  return out;
}

TEST_F(SchedulerTest, WaitingEmbeddingJobsRunTogetherInOneCall) {
  start(2);
  auto a = submit_embedding(queue_, "a", {{1, 2}, {3}});
  auto b = submit_embedding(queue_, "b", {{4, 5, 6}});
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  ASSERT_TRUE(b.sink->wait_end());
  EXPECT_EQ(engine_->embed_calls(), std::vector<std::size_t>{3});
  const auto ea = embeddings_of(*a.sink);
  ASSERT_EQ(ea.size(), 2u);
  EXPECT_EQ(ea[1].index, 1);
  EXPECT_FLOAT_EQ(ea[1].embedding[0] / ea[1].embedding[2], 1.0F);  // the input {3}: length 1
  const auto eb = embeddings_of(*b.sink);
  ASSERT_EQ(eb.size(), 1u);
  EXPECT_FLOAT_EQ(eb[0].embedding[1] / eb[0].embedding[2], 4.0F);  // its own first token
  EXPECT_EQ(a.sink->last_as<DoneEvent>()->usage.prompt_tokens, 3);
  EXPECT_EQ(b.sink->last_as<DoneEvent>()->usage.completion_tokens, 0);
  const auto events = a.sink->events();
  EXPECT_TRUE(std::holds_alternative<StartedEvent>(events.front()));
}

TEST_F(SchedulerTest, AnEmbeddingJobBesideGenerationTakesNoSlot) {
  start(1);
  auto gen = submit(queue_, "g", "a", 20);
  auto emb = submit_embedding(queue_, "e", {{7}});
  scheduler_->start();
  ASSERT_TRUE(emb.sink->wait_end());
  ASSERT_TRUE(gen.sink->wait_end());
  EXPECT_EQ(gen.sink->last_as<DoneEvent>()->finish_reason, "length");
  EXPECT_EQ(embeddings_of(*emb.sink).size(), 1u);
}

TEST_F(SchedulerTest, AFailedEmbeddingIsAnEngineFailure) {
  start(1);
  engine_->set_embed_fails();
  auto a = submit_embedding(queue_, "a", {{1}});
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  ASSERT_NE(a.sink->last_as<ErrorEvent>(), nullptr);
  EXPECT_EQ(a.sink->last_as<ErrorEvent>()->code, "engine_failure");
}

TEST_F(SchedulerTest, AnEmbeddingJobPastItsDeadlineIsNotRun) {
  start(1);
  ValidatedRequest r;
  r.embed_tokens = {{1}};
  auto sink = std::make_shared<RecordingSink>();
  auto job = std::make_shared<Job>("late", std::move(r), Clock::now() - std::chrono::seconds(1), sink);
  ASSERT_EQ(queue_.push(job), PushResult::accepted);
  scheduler_->start();
  ASSERT_TRUE(sink->wait_end());
  EXPECT_EQ(sink->last_as<ErrorEvent>()->code, "deadline_exceeded");
  EXPECT_TRUE(engine_->embed_calls().empty());
}

}  // namespace
}  // namespace llmq
