// The scheduler's prefix cache (a slot's own cells, cells copied from another slot) and its
// chunked prefill under the prefill budgets, over the FakeEngine.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/scheduler_fixture.h"
#include "telemetry/service_metrics.h"

namespace llmq {
namespace {

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

// --- chunked prefill under the two budgets ---

// The prompt chunks of the steps in which the stream of slot 0 also generated.
std::vector<std::size_t> chunks_beside_a_stream(const std::vector<std::vector<BatchEntry>>& batches) {
  std::vector<std::size_t> chunks;
  for (const auto& batch : batches) {
    const auto prompt = std::ranges::count_if(batch, [](const BatchEntry& e) { return e.slot == 1 && e.token == 'x'; });
    const bool generating = std::ranges::any_of(batch, [](const BatchEntry& e) { return e.slot == 0; });
    if (prompt > 0 && generating) chunks.push_back(static_cast<std::size_t>(prompt));
  }
  return chunks;
}

double mean(const std::vector<std::size_t>& xs) {
  double sum = 0;
  for (const std::size_t x : xs) sum += static_cast<double>(x);
  return xs.empty() ? 0 : sum / static_cast<double>(xs.size());
}

TEST_F(SchedulerTest, WhileOthersGenerateAPromptIsPrefilledInChunksThatKeepStepsShort) {
  // A step costs 2 ms plus 0.1 ms per prompt token: with factor 2, about 20 prompt tokens fit
  // in a step beside the running stream; a whole batch (512) would stretch it 26 times.
  start(2, 4096, 512, 2.0);
  const std::vector<std::size_t> chunks = chunks_beside_a_stream(prompt_beside_a_stream(600));
  EXPECT_GE(chunks.size(), 600u / 64);
  // Generous: timing noise may stretch one estimate.
  EXPECT_LE(std::ranges::count_if(chunks, [](std::size_t n) { return n > 64; }), 1);
}

TEST_F(SchedulerTest, TheNewcomersBudgetOutweighsAStreamsBudgetThatWouldStarveTheirPrompt) {
  // A step costs 2 ms plus 0.1 ms per prompt token. A stall factor of 1.2 alone leaves a
  // prompt 4 tokens a step, where the fixed 2 ms dwarf them: it would advance at a sixth of its
  // speed in whole batches. A slowdown of 1.5 asks for two thirds: 2 / (0.5 * 0.1) = 40 tokens
  // a step (30 every other step, for the fit).
  start(2, 4096, 512, 1.2, 1.5);
  const std::vector<std::size_t> chunks = chunks_beside_a_stream(prompt_beside_a_stream(600));
  ASSERT_FALSE(chunks.empty());
  // Timing noise moves the fit; the floor keeps chunks far above the stall factor's 4.
  EXPECT_GE(mean(chunks), 20.0);
  EXPECT_LE(chunks.size(), 600u / 12);
}

TEST_F(SchedulerTest, WithoutTheNewcomersBudgetTheStreamsBudgetAloneSizesTheChunks) {
  start(2, 4096, 512, 1.2, 0);
  // 600 tokens, so that the first chunks (32 and 24, before the costs are fitted) weigh little
  // beside the ~4-token ones after: with 200, a loaded machine's timing noise once lifted the
  // mean past the bound.
  const std::vector<std::size_t> chunks = chunks_beside_a_stream(prompt_beside_a_stream(600));
  ASSERT_FALSE(chunks.empty());
  EXPECT_LE(mean(chunks), 12.0);  // about 4 once the costs are fitted
}

TEST_F(SchedulerTest, ABatchListsItsEntriesInSlotOrder) {
  // llama.cpp splits a batch into micro-batches of sequences with consecutive ids; a prompt
  // prefilled in slot 1 between streams in slots 0 and 2 must sit between them in the batch.
  start(3, 4096, 512, 2.0);
  engine_->set_costs(std::chrono::microseconds(1000), std::chrono::microseconds(20));
  auto a = submit(queue_, "a", "a", 1000);     // slot 0
  auto b = submit(queue_, "b", "b", 1);        // slot 1, ends at once
  scheduler_->start();
  ASSERT_TRUE(b.sink->wait_end());
  auto c = submit(queue_, "c", "c", 1000);     // slot 2, the empty one
  while (c.sink->events().size() < 5) std::this_thread::sleep_for(milliseconds(1));
  auto d = submit(queue_, "d", std::string(300, 'x'), 2);  // slot 1 again
  ASSERT_TRUE(d.sink->wait_end(milliseconds(20000)));
  a.job->cancel();
  c.job->cancel();
  ASSERT_TRUE(a.sink->wait_end());
  ASSERT_TRUE(c.sink->wait_end());
  std::size_t checked = 0;
  for (const auto& batch : engine_->batches()) {
    const bool prefill_in_1 = std::ranges::any_of(batch, [](const BatchEntry& e) { return e.slot == 1 && e.token == 'x'; });
    const bool stream_in_2 = std::ranges::any_of(batch, [](const BatchEntry& e) { return e.slot == 2; });
    if (!prefill_in_1 || !stream_in_2) continue;
    ++checked;
    EXPECT_TRUE(std::ranges::is_sorted(batch, {}, &BatchEntry::slot));
  }
  EXPECT_GE(checked, 2u);
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
