#include "engine/prefill_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace llmq {

double prefill_chunk(const PrefillBudgets& budgets, double plain_step_s, const StepCost::Line& cost,
                     std::size_t generating, std::size_t waiting) {
  if (newcomers_outnumber_streams(generating, waiting)) return std::numeric_limits<double>::infinity();
  // The streams' budget: the step stays within the factor times a plain step.
  const double streams_target = budgets.stall_factor * plain_step_s;
  double c = std::max(std::floor((streams_target - cost.base) / cost.per_token), 0.0);
  // The newcomers' budget: prompt tokens go through at c / (base + c * per_token) per second,
  // against 1 / per_token in whole batches (where the fixed part is spread thin); advancing at
  // least 1/s as fast takes c >= base / ((s - 1) * per_token). On a CPU the fixed part is large
  // (a chunk is a micro-batch of its own beside the streams' tokens, attending over its whole
  // context), so this floor, not the streams' budget, often sets the size.
  if (budgets.slowdown > 1) {
    c = std::max(c, std::ceil(cost.base / ((budgets.slowdown - 1) * cost.per_token)));
  }
  return c;
}

}  // namespace llmq
