// The second half of validation, which needs the model: renders `messages` through the model's
// chat template, tokenizes, and checks the prompt and max_tokens against the context.
#pragma once

#include <variant>

#include "http/api_error.h"
#include "queue/request.h"
#include "engine/engine.h"

namespace llmq {

using PromptResult = std::variant<ValidatedRequest, ApiError>;

// Thread-safe (uses only the engine's const model queries).
PromptResult validate_for_model(ParsedRequest request, const Engine& engine);

}  // namespace llmq
