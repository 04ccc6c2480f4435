// Scale-out: `llmq gateway` (the HTTP front door; the queue LLM_INFERENCE lives in NATS
// JetStream; no weights loaded) and `llmq worker` (takes jobs for its models from JetStream and
// decodes them with its warm pool). See docs/scale-out.md. Each returns the process's exit code.
#pragma once

#include "cli/config.h"

namespace llmq {

int run_gateway(const ServeConfig& config);
int run_worker(const ServeConfig& config);

}  // namespace llmq
