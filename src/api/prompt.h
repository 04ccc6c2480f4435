// The second half of validation, which needs the model's read-only half: renders `messages` through the model's
// chat template, tokenizes, and checks the prompt and max_tokens against the context.
#pragma once

#include <variant>

#include "http/api_error.h"
#include "queue/request.h"
#include "engine/model_catalog.h"

namespace llmq {

using PromptResult = std::variant<ValidatedRequest, ApiError>;

// Resolves the request's model in the catalog (absent: the default; unknown: 404) and checks the
// prompt against that model. Thread-safe (only const model queries).
PromptResult validate_for_model(ParsedRequest request, const ModelCatalog& models);

}  // namespace llmq
