#include "api/prompt.h"

#include "engine/chat_prompt.h"

namespace llmq {

PromptResult validate_for_model(ParsedRequest request, const ModelCatalog& models) {
  const ServedModel* served = request.model ? models.find(*request.model) : &models.default_model();
  if (served == nullptr) {
    return ApiError{404, "model_not_found", "model '" + *request.model + "' is not served here",
                    std::string("model")};
  }
  const ModelText& engine = *served->text;
  const ModelInfo& model = engine.info();
  const std::int32_t ctx = served->ctx_per_slot;
  if (request.max_tokens > ctx) {
    return bad_field("max_tokens", "out_of_range",
                     "max_tokens must be at most the context size, " + std::to_string(ctx));
  }

  ValidatedRequest out;
  const char* field = "prompt";
  if (request.messages) {
    field = "messages";
    // Only the template's markup may become control tokens; message contents stay text.
    const std::optional<std::vector<PromptPiece>> pieces = split_chat(
        *request.messages, [&engine](const std::vector<ChatMessage>& messages) {
          return engine.apply_chat_template(messages);
        });
    if (!pieces) {
      return bad_field("messages", "unsupported",
                       "model '" + model.name +
                           "' has no chat template llmq can apply; send a prompt instead");
    }
    for (const PromptPiece& piece : *pieces) {
      const std::vector<Token> tokens =
          engine.tokenize(piece.text, out.prompt_tokens.empty(), piece.markup);
      out.prompt_tokens.insert(out.prompt_tokens.end(), tokens.begin(), tokens.end());
    }
  } else {
    // A raw prompt is text, all of it: "<|im_start|>" in it is not the control token.
    out.prompt_tokens = engine.tokenize(*request.prompt, true, false);
  }
  if (out.prompt_tokens.empty()) {
    return bad_field(field, "out_of_range", "the prompt has no tokens");
  }
  const auto n = static_cast<std::int64_t>(out.prompt_tokens.size());
  if (n >= ctx) {
    return bad_field(field, "context_exceeded",
                     "the prompt is " + std::to_string(n) + " tokens; the context holds " +
                         std::to_string(ctx) + " with room for at least one generated token");
  }
  if (request.constraint) {
    CompiledGrammar grammar = engine.compile_constraint(*request.constraint);
    const OutputConstraint& c = *request.constraint;
    if (!grammar.error.empty()) {
      const bool is_grammar = c.kind == OutputConstraint::Kind::grammar;
      return bad_field(c.field, is_grammar ? "invalid_grammar" : "invalid_schema",
                       c.field + ": " + grammar.error);
    }
    request.sampling.grammar = std::move(grammar.gbnf);
  }
  out.model = model.name;
  out.params = std::move(request);
  return out;
}

}  // namespace llmq
