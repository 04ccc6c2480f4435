#include "api/prompt.h"

namespace llmq {

PromptResult validate_for_model(ParsedRequest request, const Engine& engine) {
  const ModelInfo& model = engine.info();
  if (request.model && *request.model != model.name) {
    return ApiError{404, "model_not_found", "model '" + *request.model + "' is not served here",
                    std::string("model")};
  }
  const std::int32_t ctx = engine.ctx_per_slot();
  if (request.max_tokens > ctx) {
    return bad_field("max_tokens", "out_of_range",
                     "max_tokens must be at most the context size, " + std::to_string(ctx));
  }

  std::string text;
  const char* field = "prompt";
  if (request.messages) {
    field = "messages";
    std::optional<std::string> rendered = engine.apply_chat_template(*request.messages);
    if (!rendered) {
      return bad_field("messages", "unsupported",
                       "model '" + model.name + "' has no chat template; send a prompt instead");
    }
    text = std::move(*rendered);
  } else {
    text = *request.prompt;
  }

  ValidatedRequest out;
  out.prompt_tokens = engine.tokenize(text, true);
  if (out.prompt_tokens.empty()) {
    return bad_field(field, "out_of_range", "the prompt has no tokens");
  }
  const auto n = static_cast<std::int64_t>(out.prompt_tokens.size());
  if (n >= ctx) {
    return bad_field(field, "context_exceeded",
                     "the prompt is " + std::to_string(n) + " tokens; the context holds " +
                         std::to_string(ctx) + " with room for at least one generated token");
  }
  out.model = model.name;
  out.params = std::move(request);
  return out;
}

}  // namespace llmq
