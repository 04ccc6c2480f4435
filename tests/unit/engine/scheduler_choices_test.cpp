// Jobs of n > 1 choices (OpenAI's `n`): one prompt prefilled once and copied, n sequences side by
// side, one `done` (or one error) for them all.
#include <algorithm>
#include <map>
#include <set>

#include "engine/scheduler_fixture.h"

namespace llmq {
namespace {

Submitted submit_choices(JobProducer& q, const std::string& id, const std::string& prompt,
                         int max_tokens, std::int32_t n) {
  ValidatedRequest r;
  r.params.max_tokens = max_tokens;
  r.params.n = n;
  r.params.sampling.seed = 42;
  r.prompt_tokens.assign(prompt.begin(), prompt.end());
  auto sink = std::make_shared<RecordingSink>();
  auto job = std::make_shared<Job>(id, std::move(r), std::nullopt, sink);
  EXPECT_EQ(q.push(job), PushResult::accepted);
  return {job, sink};
}

// Each choice's text, by choice.
std::map<std::int32_t, std::string> texts(const RecordingSink& sink) {
  std::map<std::int32_t, std::string> out;
  std::map<std::int32_t, std::int64_t> next;
  for (const JobEvent& e : sink.events()) {
    if (const auto* t = std::get_if<TokenEvent>(&e)) {
      EXPECT_EQ(t->index, next[t->choice]++) << "choice " << t->choice;  // each counts its own
      out[t->choice] += t->text;
    }
  }
  return out;
}

TEST_F(SchedulerTest, NChoicesPrefillThePromptOnceAndCopyItsCells) {
  start(3);
  auto a = submit_choices(queue_, "a", "abcdef", 4, 3);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  // Every prompt token was decoded once, in one slot.
  std::size_t prompt_entries = 0;
  std::set<std::int32_t> prompt_slots;
  for (const auto& batch : engine_->batches()) {
    for (const BatchEntry& e : batch) {
      if (e.pos < 6) {
        ++prompt_entries;
        prompt_slots.insert(e.slot);
      }
    }
  }
  EXPECT_EQ(prompt_entries, 6u);
  ASSERT_EQ(prompt_slots.size(), 1u);
  const std::int32_t leader = *prompt_slots.begin();
  const auto copies = engine_->copies();
  ASSERT_EQ(copies.size(), 2u);
  for (const auto& copy : copies) {
    EXPECT_EQ(copy.from, leader);
    EXPECT_EQ(copy.keep, 6);
    EXPECT_NE(copy.to, leader);
  }
  // Each choice went on from the prompt's last token: 'f' (102) → 103, 104, … (the fake's
  // pieces are 'a' + token % 26).
  const auto by_choice = texts(*a.sink);
  ASSERT_EQ(by_choice.size(), 3u);
  for (const auto& [choice, text] : by_choice) EXPECT_EQ(text, "zabc") << choice;
  const auto events = a.sink->events();
  EXPECT_EQ(std::ranges::count_if(events, [](const JobEvent& e) {
              return std::holds_alternative<StartedEvent>(e);
            }),
            1);
  const auto* done = a.sink->last_as<DoneEvent>();
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->choice_finish_reasons, (std::vector<std::string>{"length", "length", "length"}));
  EXPECT_EQ(done->usage.prompt_tokens, 6);
  EXPECT_EQ(done->usage.completion_tokens, 12);
  EXPECT_EQ(scheduler_->busy_slots(), 0);
}

TEST_F(SchedulerTest, AJobOfNChoicesWaitsForNFreeSlotsAndOthersWaitBehindIt) {
  start(2, 4096);
  engine_->set_costs(std::chrono::microseconds(1000), std::chrono::microseconds(0));
  auto running = submit(queue_, "running", "a", 4000);
  scheduler_->start();
  while (running.sink->events().size() < 5) std::this_thread::sleep_for(milliseconds(1));
  auto pair = submit_choices(queue_, "pair", "xy", 3, 2);
  auto after = submit(queue_, "after", "b", 3);
  std::this_thread::sleep_for(milliseconds(50));
  // One slot is free, but the pair needs two, and the job behind it does not pass it.
  EXPECT_EQ(pair.sink->events().size(), 0u);
  EXPECT_EQ(after.sink->events().size(), 0u);
  EXPECT_EQ(scheduler_->held_jobs(), 2);  // the running job and the held pair
  running.job->cancel();
  ASSERT_TRUE(pair.sink->wait_end());
  ASSERT_TRUE(after.sink->wait_end());
  EXPECT_EQ(texts(*pair.sink).size(), 2u);
  EXPECT_NE(after.sink->last_as<DoneEvent>(), nullptr);
}

TEST_F(SchedulerTest, CancelledChoicesEndOnceAndFreeEverySlot) {
  start(3, 4096);
  engine_->set_costs(std::chrono::microseconds(1000), std::chrono::microseconds(0));
  auto a = submit_choices(queue_, "a", "abc", 4000, 3);
  scheduler_->start();
  while (a.sink->events().size() < 10) std::this_thread::sleep_for(milliseconds(1));
  a.job->cancel();
  ASSERT_TRUE(a.sink->wait_end());
  const auto events = a.sink->events();
  EXPECT_EQ(std::ranges::count_if(events, [](const JobEvent& e) {
              return std::holds_alternative<DoneEvent>(e) || std::holds_alternative<ErrorEvent>(e);
            }),
            1);
  const auto* done = a.sink->last_as<DoneEvent>();
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->choice_finish_reasons,
            (std::vector<std::string>{"cancelled", "cancelled", "cancelled"}));
  auto next = submit(queue_, "next", "b", 2);
  ASSERT_TRUE(next.sink->wait_end());
  EXPECT_EQ(scheduler_->busy_slots(), 0);
}

TEST_F(SchedulerTest, MoreChoicesThanSlotsIsRefusedByTheWorker) {
  start(2);
  auto a = submit_choices(queue_, "a", "abc", 4, 3);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  const auto* error = a.sink->last_as<ErrorEvent>();
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->code, "too_many_choices");
  auto next = submit(queue_, "next", "b", 2);
  EXPECT_TRUE(next.sink->wait_end());
}

TEST_F(SchedulerTest, ADecodeFailureBeforeAnyTokenRetriesEveryChoiceTogether) {
  start(3);
  scheduler_ = std::make_unique<Scheduler>(
      *engine_, queue_,
      SchedulerOptions{.worker_id = "w-test", .max_attempts = 3, .decode_stall_factor = 0,
                       .prefill_slowdown = 0, .backoff_initial = milliseconds(1),
                       .backoff_max = milliseconds(2)});
  engine_->fail_next_decodes(1);
  auto a = submit_choices(queue_, "a", "abcd", 3, 3);
  scheduler_->start();
  ASSERT_TRUE(a.sink->wait_end());
  const auto* done = a.sink->last_as<DoneEvent>();
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->usage.completion_tokens, 9);
  for (const auto& [choice, text] : texts(*a.sink)) EXPECT_EQ(text, "xyz") << choice;  // 'd' + 1…
  EXPECT_EQ(scheduler_->busy_slots(), 0);
}

}  // namespace
}  // namespace llmq
