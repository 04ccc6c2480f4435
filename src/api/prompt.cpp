#include "api/prompt.h"

#include "engine/chat_prompt.h"

namespace llmq {
namespace {

// An embedding request: every input tokenized (as a prompt is: text, the model's BOS added)
// and within the model's embedding input limit; `dimensions` only as the model's own.
PromptResult validate_embedding(ParsedRequest request, const ServedModel& served) {
  const ModelText& model = *served.text;
  const ModelInfo& info = model.info();
  if (request.dimensions && *request.dimensions != info.n_embd) {
    return bad_field("dimensions", "unsupported",
                     "model '" + info.name + "' embeds in " + std::to_string(info.n_embd) +
                         " dimensions and cannot shorten them; send " +
                         std::to_string(info.n_embd) + " or leave dimensions out");
  }
  const std::int32_t limit = embed_input_limit(served.ctx_per_slot);
  ValidatedRequest out;
  const std::vector<std::string>& inputs = request.embed_inputs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::string field = inputs.size() == 1 ? "input" : "input[" + std::to_string(i) + "]";
    std::vector<Token> tokens = model.tokenize(inputs[i], true, false);
    if (tokens.empty()) return bad_field(field, "out_of_range", field + " has no tokens");
    if (tokens.size() > static_cast<std::size_t>(limit)) {
      return bad_field(field, "context_exceeded",
                       field + " is " + std::to_string(tokens.size()) + " tokens; an input may have " +
                           std::to_string(limit));
    }
    out.embed_tokens.push_back(std::move(tokens));
  }
  out.model = info.name;
  out.params = std::move(request);
  return out;
}

}  // namespace

PromptResult validate_for_model(ParsedRequest request, const ModelCatalog& models) {
  const ServedModel* served = request.model ? models.find(*request.model) : &models.default_model();
  if (served == nullptr) {
    return ApiError{404, "model_not_found", "model '" + *request.model + "' is not served here",
                    std::string("model")};
  }
  if (request.dialect == Dialect::openai_embedding) return validate_embedding(std::move(request), *served);
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
