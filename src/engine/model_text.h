// ModelText: the read-only half of a model — its vocabulary, chat template and limits. What the
// HTTP side needs to turn a request into prompt tokens, without the weights: a gateway loads
// only this half (vocab-only), a worker the whole model (engine/engine.h).
//
// Thread safety: every method is const and may be called from any thread at any time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/request.h"

namespace llmq {

struct ModelInfo {
  std::string name;          // what clients pass as `model` (file stem of the GGUF)
  std::string path;          // where it was loaded from
  std::string description;   // llama.cpp's one-line description (architecture, size, type)
  std::int64_t n_params = 0; // 0 when only the vocabulary was loaded
  std::int32_t n_ctx_train = 0;
  std::int32_t n_vocab = 0;
  std::int32_t n_embd = 0;   // the size of its embeddings
  bool has_chat_template = false;
};

// A structured-output constraint compiled to the grammar the sampler enforces.
struct CompiledGrammar {
  std::string gbnf;   // GBNF with root rule "root"
  std::string error;  // not empty: the constraint is invalid or unsupported, and why
};

class ModelText {
 public:
  virtual ~ModelText() = default;

  virtual const ModelInfo& info() const = 0;
  // Text to tokens; `add_special` adds BOS where the model wants one. `parse_special` turns the
  // text of a control token ("<|im_end|>") into that token: only for the chat template's own
  // markup, never for what a client wrote (engine/chat_prompt.h).
  virtual std::vector<Token> tokenize(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // Renders chat messages with the model's own template, with the assistant turn opened.
  // nullopt when the model has no usable template.
  virtual std::optional<std::string> apply_chat_template(
      const std::vector<ChatMessage>& messages) const = 0;
  // The bytes of one token; may be part of a multi-byte UTF-8 character.
  virtual std::string token_piece(Token token) const = 0;
  virtual bool is_end_of_generation(Token token) const = 0;
  // Compiles a grammar, a JSON Schema or "any JSON object" to GBNF and checks that the grammar
  // parses against this vocabulary.
  virtual CompiledGrammar compile_constraint(const OutputConstraint& constraint) const = 0;
};

}  // namespace llmq
