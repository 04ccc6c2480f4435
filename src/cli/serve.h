// `llmq serve`: the all-in-one process, HTTP gateway + in-process queue LLM_INFERENCE + one
// inference worker. Returns the process exit code.
#pragma once

#include "cli/config.h"

namespace llmq {

int run_serve(const ServeConfig& config);

}  // namespace llmq
