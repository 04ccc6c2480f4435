// `llmq serve`: the all-in-one process, HTTP gateway + in-process queue LLM_INFERENCE (a
// partition per model) + the warm pool of models and their workers. Returns the exit code.
#pragma once

#include "cli/config.h"

namespace llmq {

int run_serve(const ServeConfig& config);

}  // namespace llmq
