// Scheduler::prefill_budget and the step costs it rests on: how many prompt tokens a step
// carries beside the generating sequences (engine/scheduler.h, engine/prefill_policy.h).
#include <algorithm>
#include <optional>

#include "engine/prefill_policy.h"
#include "engine/scheduler.h"

namespace llmq {
namespace {

// The fewest prompt tokens a step takes while others decode, so that a long prompt still moves
// when the stall factor cannot be kept (the prompt's context alone stretches the step).
constexpr std::size_t kMinPrefillChunk = 2;
// Prompt tokens a step takes while others decode before the costs are known.
constexpr std::size_t kInitialPrefillChunk = 32;
// Weight of the newest step in the moving averages of step costs.
constexpr double kCostSmoothing = 0.2;

void smooth(std::optional<double>& average, double sample) {
  average = average ? (1 - kCostSmoothing) * *average + kCostSmoothing * sample : sample;
}

}  // namespace

std::size_t Scheduler::prefill_budget(std::size_t generating, std::size_t waiting) {
  const auto whole = static_cast<std::size_t>(engine_.batch_tokens());
  if (options_.decode_stall_factor <= 0 || newcomers_outnumber_streams(generating, waiting)) return whole;
  const std::size_t least = std::min(whole, kMinPrefillChunk);
  const std::optional<StepCost::Line> line = mixed_steps_.line();
  std::size_t tokens = kInitialPrefillChunk;  // until the costs are known
  if (decode_step_s_ && line) {
    const double c = prefill_chunk(
        PrefillBudgets{.stall_factor = options_.decode_stall_factor, .slowdown = options_.prefill_slowdown},
        *decode_step_s_, *line, generating, waiting);
    tokens = static_cast<std::size_t>(std::min(c, static_cast<double>(whole)));
  }
  tokens = std::clamp(tokens, least, whole);
  // Every other step takes three quarters: the fit needs steps of different sizes to tell the
  // fixed part of a step's cost from the part that grows with its prompt tokens.
  vary_ = !vary_;
  if (vary_) tokens = std::max(least, tokens * 3 / 4);
  return tokens;
}

void Scheduler::note_step_cost(double seconds) {
  if (step_prompt_ == 0) {
    if (step_generating_ > 0) smooth(decode_step_s_, seconds);
    return;
  }
  // Whole batches of prompt with nothing generating cost differently from chunks beside
  // decodes; only the latter tell how much a chunk stretches a step.
  if (step_generating_ > 0) mixed_steps_.add(static_cast<double>(step_prompt_), seconds);
}

}  // namespace llmq
