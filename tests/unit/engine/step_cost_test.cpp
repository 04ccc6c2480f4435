#include "engine/step_cost.h"

#include <gtest/gtest.h>

namespace llmq {
namespace {

TEST(StepCost, FitsTheFixedAndThePerTokenPartOfAStep) {
  StepCost cost;
  // 30 ms whatever the chunk, plus 1 ms per prompt token.
  for (int i = 0; i < 20; ++i) {
    const double n = i % 2 == 0 ? 12 : 6;
    cost.add(n, 0.030 + 0.001 * n);
  }
  const auto line = cost.line();
  ASSERT_TRUE(line);
  EXPECT_NEAR(line->base, 0.030, 1e-9);
  EXPECT_NEAR(line->per_token, 0.001, 1e-9);
}

TEST(StepCost, NeedsStepsOfDifferentSizes) {
  StepCost cost;
  for (int i = 0; i < 20; ++i) cost.add(8, 0.05);
  EXPECT_FALSE(cost.line());
  StepCost few;
  few.add(4, 0.01);
  few.add(8, 0.02);
  EXPECT_FALSE(few.line()) << "two steps are too few to fit";
}

TEST(StepCost, FollowsACostThatGrowsAndNeverGoesBelowAFloor) {
  StepCost cost;
  for (int i = 0; i < 50; ++i) cost.add(i % 2 == 0 ? 4 : 2, 0.020);  // size makes no difference
  const auto flat = cost.line();
  ASSERT_TRUE(flat);
  EXPECT_GT(flat->per_token, 0.0);
  EXPECT_NEAR(flat->base, 0.020, 1e-3);
  // The prompt's context grows: the same chunks now cost 40 ms; the fit follows within a few
  // dozen steps.
  for (int i = 0; i < 40; ++i) cost.add(i % 2 == 0 ? 4 : 2, 0.040);
  EXPECT_NEAR(cost.line()->base, 0.040, 1e-3);
}

}  // namespace
}  // namespace llmq
