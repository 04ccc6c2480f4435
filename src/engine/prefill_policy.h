// The chunk a prompt gets in a step beside running streams, from the two budgets (the running
// streams' stall factor and the newcomers' slowdown) and the measured step costs. The
// scheduler's policy as plain arithmetic; docs/api.md, "Chunked prefill", says it in words.
#pragma once

#include <cstddef>

#include "engine/step_cost.h"

namespace llmq {

struct PrefillBudgets {
  double stall_factor = 3.0;  // a step with prompt tokens takes at most this many plain steps
  double slowdown = 2.0;      // a prompt advances at least 1/this as fast as in whole batches
};

// More newcomers than streams: their prompts go in whole batches and the streams wait, as every
// stream does in llama-server. Holding several requests back from their first token for the
// smoothness of fewer answers is the worse trade, and small chunks cost more per prompt token
// than whole batches (a fixed part per step; llama.cpp's CPU attention is slower per token for
// a few query rows than for many).
inline bool newcomers_outnumber_streams(std::size_t generating, std::size_t waiting) {
  return waiting > generating;
}

// Prompt tokens for a step in which `generating` sequences generate and `waiting` wait for
// their first token (both at least 1), where a plain step takes `plain_step_s` and a step with
// c prompt tokens `cost.base + c * cost.per_token`. Not clamped to a batch: infinity when
// the newcomers outnumber the streams (whole batches).
double prefill_chunk(const PrefillBudgets& budgets, double plain_step_s, const StepCost::Line& cost,
                     std::size_t generating, std::size_t waiting);

}  // namespace llmq
