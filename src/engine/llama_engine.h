// LlamaEngine: the Engine over llama.cpp. One model, one context holding `slots` sequences of
// `ctx_per_slot` tokens each (a non-unified KV cache, so one sequence can never take another's
// room), decoded on the CPU with `threads` threads.
#pragma once

#include <llama.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/llama_model_text.h"

namespace llmq {

struct LlamaEngineOptions {
  std::string model_path;
  std::int32_t slots = 4;
  std::int32_t ctx_per_slot = 4096;
  std::int32_t batch_tokens = 512;
  std::int32_t threads = 0;  // 0: every core
};

// What warm_up() ran.
struct WarmUpReport {
  std::int32_t tokens = 0;   // tokens decoded, over every slot
  std::int32_t decodes = 0;  // llama_decode calls
  double ms = 0;             // wall time, sampling included
};

class LlamaEngine final : public Engine {
 public:
  // Loads the model and creates the context; throws std::runtime_error with a clear message.
  explicit LlamaEngine(const LlamaEngineOptions& options);
  ~LlamaEngine() override;

  // Runs what serving runs, before anyone is served: a batched prefill on every slot (one slot
  // with a longer chunk), a sample from each, and a decode step of every slot together; then
  // forgets it all. The first decode allocates compute buffers and faults the weights in, and a
  // kernel that cannot run on this CPU faults here, at start, rather than on a user's request.
  // Throws std::runtime_error when a decode fails. Worker thread, before the first job.
  WarmUpReport warm_up();

  const ModelInfo& info() const override { return text_.info(); }
  std::int32_t slots() const override { return options_.slots; }
  std::int32_t ctx_per_slot() const override { return options_.ctx_per_slot; }
  std::int32_t batch_tokens() const override { return options_.batch_tokens; }

  std::vector<Token> tokenize(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::optional<std::string> apply_chat_template(
      const std::vector<ChatMessage>& messages) const override;
  std::string token_piece(Token token) const override;
  bool is_end_of_generation(Token token) const override;
  CompiledGrammar compile_constraint(const OutputConstraint& constraint) const override {
    return text_.compile_constraint(constraint);
  }

  std::unique_ptr<Sampler> make_sampler(const SamplingParams& params) override;
  bool decode(const std::vector<BatchEntry>& batch) override;
  Token sample(Sampler& sampler, std::int32_t batch_index) override;
  PositionLogprobs logprobs(std::int32_t batch_index, Token sampled, std::int32_t top) override;
  std::vector<std::vector<float>> embed(const std::vector<std::vector<Token>>& inputs) override;
  void clear_slot(std::int32_t slot) override;
  bool truncate_slot(std::int32_t slot, std::int32_t keep) override;
  bool copy_slot_prefix(std::int32_t from, std::int32_t to, std::int32_t keep) override;

 private:
  LlamaEngineOptions options_;
  LlamaModelText text_;                     // the model with its weights
  llama_context* ctx_ = nullptr;            // owned; worker thread only
  llama_batch batch_{};                     // reused by every decode; worker thread only
  std::vector<llama_token_data> candidates_;  // one per vocabulary token; worker thread only
  // A second context for embeddings, made on the first embedding job (worker thread only):
  // pooled outputs, one sequence of embed_input_limit() tokens.
  std::int32_t ctx_threads_ = 1;        // the threads both contexts decode with
  llama_context* embed_ctx_ = nullptr;  // owned
  bool embed_ctx_failed_ = false;       // tried once, could not be made

  llama_context* embedding_context();

  // The candidates of batch entry `batch_index`, from its logits.
  llama_token_data_array fill_candidates(std::int32_t batch_index);
};

}  // namespace llmq
