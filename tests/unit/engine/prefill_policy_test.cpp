// The chunk sizes of the two prefill budgets, on given costs (the scheduler measures them).
#include "engine/prefill_policy.h"

#include <gtest/gtest.h>

#include <cmath>

namespace llmq {
namespace {

// A plain step 20 ms; a step with prompt tokens 30 ms plus 2 ms a token: about this machine's
// three streams beside a chunk at a short context.
constexpr double kPlain = 0.020;
const StepCost::Line kCost{.base = 0.030, .per_token = 0.002};

TEST(PrefillPolicy, TheStreamsBudgetAloneKeepsTheStepWithinTheFactor) {
  // 3 x 20 ms = 60 ms: (60 - 30) / 2 = 15 tokens.
  EXPECT_DOUBLE_EQ(prefill_chunk({.stall_factor = 3, .slowdown = 0}, kPlain, kCost, 3, 1), 15);
  // A factor the fixed part alone exceeds leaves nothing (the scheduler's floor of 2 applies).
  EXPECT_DOUBLE_EQ(prefill_chunk({.stall_factor = 1.2, .slowdown = 0}, kPlain, kCost, 3, 1), 0);
}

TEST(PrefillPolicy, TheNewcomersBudgetSetsTheFloor) {
  // Slowdown 2: c >= 30 / (1 * 2) = 15 tokens, the rate 15 / (30 + 30) = half of 1 / 2 ms.
  EXPECT_DOUBLE_EQ(prefill_chunk({.stall_factor = 1.2, .slowdown = 2}, kPlain, kCost, 3, 1), 15);
  // Slowdown 1.5: c >= 30 / (0.5 * 2) = 30 tokens, beyond the streams' 15: the newcomer wins.
  EXPECT_DOUBLE_EQ(prefill_chunk({.stall_factor = 3, .slowdown = 1.5}, kPlain, kCost, 3, 1), 30);
  // A generous streams' budget is not cut by the floor.
  EXPECT_DOUBLE_EQ(prefill_chunk({.stall_factor = 10, .slowdown = 2}, kPlain, kCost, 3, 1), 85);
}

TEST(PrefillPolicy, NewcomersOutnumberingTheStreamsGetWholeBatches) {
  EXPECT_TRUE(std::isinf(prefill_chunk({.stall_factor = 3, .slowdown = 2}, kPlain, kCost, 1, 2)));
  EXPECT_TRUE(std::isinf(prefill_chunk({.stall_factor = 3, .slowdown = 0}, kPlain, kCost, 2, 3)));
  // As many streams as newcomers, or more: the budgets as given.
  EXPECT_DOUBLE_EQ(prefill_chunk({.stall_factor = 1.2, .slowdown = 2}, kPlain, kCost, 2, 2), 15);
  EXPECT_DOUBLE_EQ(prefill_chunk({.stall_factor = 1.2, .slowdown = 2}, kPlain, kCost, 4, 1), 15);
}

}  // namespace
}  // namespace llmq
