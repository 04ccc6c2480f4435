// SlotBoard (engine/slot_board.h): what the live status reads of the slots, and the scheduler
// publishing to it as its slots take, run and give up jobs.
#include "engine/slot_board.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

#include "engine/scheduler_fixture.h"

namespace llmq {
namespace {

using namespace std::chrono_literals;

SlotView idle_slot(std::int32_t slot, const std::string& model) {
  SlotView v;
  v.slot = slot;
  v.model = model;
  return v;
}

// Polls the board until `ok` holds for its slots (or 5 s passed); returns the last reading.
std::vector<SlotView> wait_for(const SlotBoard& board,
                               const std::function<bool(const std::vector<SlotView>&)>& ok) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  std::vector<SlotView> slots = board.slots();
  while (!ok(slots) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(2ms);
    slots = board.slots();
  }
  return slots;
}

TEST(SlotBoard, KeepsTheLatestCopyOfEachModelsSlots) {
  SlotBoard board;
  board.publish("b", {idle_slot(0, "b")});
  board.publish("a", {idle_slot(0, "a"), idle_slot(1, "a")});
  board.publish("a", {idle_slot(0, "a")});
  std::vector<SlotView> slots = board.slots();
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0].model, "a");
  EXPECT_EQ(slots[1].model, "b");
  board.forget("a");
  slots = board.slots();
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(slots[0].model, "b");
}

TEST(SlotBoard, TheSchedulerPublishesItsSlotsAndLeavesWhenItStops) {
  InProcessQueue queue(10);
  FakeEngine engine(2, 256, 64);
  engine.set_costs(std::chrono::microseconds(2000), std::chrono::microseconds(100));
  SlotBoard board;
  Scheduler scheduler(engine, queue, SchedulerOptions{.worker_id = "w", .slot_board = &board});
  auto running = submit(queue, "running", "a", 100000);
  scheduler.start();
  const auto generating = [](const SlotView& s) {
    return s.job_id == "running" && s.state == "generating" && s.tokens >= 3;
  };
  std::vector<SlotView> slots =
      wait_for(board, [&](const auto& all) { return std::ranges::any_of(all, generating); });
  ASSERT_EQ(slots.size(), 2u);
  const auto busy = std::ranges::find_if(slots, generating);
  ASSERT_NE(busy, slots.end());
  EXPECT_EQ(busy->model, engine.info().name);
  ASSERT_TRUE(busy->tokens_per_s.has_value());
  EXPECT_GT(*busy->tokens_per_s, 0);
  const SlotView& other = slots[busy == slots.begin() ? 1 : 0];
  EXPECT_EQ(other.state, "idle");
  EXPECT_TRUE(other.job_id.empty());

  running.job->cancel();
  ASSERT_TRUE(running.sink->wait_end());
  slots = wait_for(board, [](const auto& all) {
    return std::ranges::all_of(all, [](const SlotView& s) { return s.job_id.empty(); });
  });
  for (const SlotView& s : slots) EXPECT_EQ(s.state, "idle");
  scheduler.stop();
  EXPECT_TRUE(board.slots().empty()) << "a stopped scheduler's slots leave the board";
}

}  // namespace
}  // namespace llmq
