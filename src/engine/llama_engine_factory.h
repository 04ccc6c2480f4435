// The warm pool's engines in a binary linked with llama.cpp: a LlamaEngine, warmed up before it
// serves. What PoolOptions::make_engine and init_runtime are outside the unit tests.
#pragma once

#include "engine/model_pool.h"

namespace llmq {

// Sets the options' engine factory (LlamaEngine, then its warm-up decode, each logged) and
// runtime set-up (init_llama_runtime).
void use_llama_engines(PoolOptions& options);

}  // namespace llmq
