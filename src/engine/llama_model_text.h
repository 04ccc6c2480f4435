// LlamaModelText: a GGUF model loaded by llama.cpp, as its read-only half (engine/model_text.h).
// Loaded vocab-only (a gateway's: the vocabulary, the chat template and the metadata, no
// weights, milliseconds and a few MB) or whole (a worker's LlamaEngine holds one and decodes with
// its weights).
#pragma once

#include <llama.h>

#include <functional>
#include <string>

#include "engine/model_text.h"

namespace llmq {

// llama.cpp's process-wide set-up (its log forwarded to ours, the backends). Idempotent and
// thread-safe; everything here that loads a model calls it first.
void init_llama_runtime();

// Runs `work` with llama.cpp's error lines on this thread collected instead of logged, and
// returns them: the reason llama.cpp gives for refusing a client's grammar belongs in the
// answer to that client, not in the server's log.
std::string llama_errors_of(const std::function<void()>& work);

class LlamaModelText final : public ModelText {
 public:
  // Throws std::runtime_error with a clear message when the file cannot be loaded.
  LlamaModelText(const std::string& path, bool vocab_only);
  ~LlamaModelText() override;
  LlamaModelText(const LlamaModelText&) = delete;
  LlamaModelText& operator=(const LlamaModelText&) = delete;

  const ModelInfo& info() const override { return info_; }
  std::vector<Token> tokenize(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::optional<std::string> apply_chat_template(
      const std::vector<ChatMessage>& messages) const override;
  std::string token_piece(Token token) const override;
  bool is_end_of_generation(Token token) const override;
  CompiledGrammar compile_constraint(const OutputConstraint& constraint) const override;

  // The loaded model (with weights unless vocab-only), for a context to be made from.
  llama_model* model() const { return model_; }

 private:
  ModelInfo info_;
  llama_model* model_ = nullptr;        // owned
  const llama_vocab* vocab_ = nullptr;  // part of model_
  std::string chat_template_;           // the model's template, empty if none
};

}  // namespace llmq
