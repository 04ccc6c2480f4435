// Engine: one loaded model (its read-only half, ModelText, and its weights) and its context of
// N sequence slots. The scheduler drives it.
//
// Implementations: LlamaEngine (engine/llama_engine.h, the real one) and a deterministic
// engine for unit tests of scheduling (tests/unit/engine/fake_engine.h).
//
// Thread safety: the const model queries (info, tokenize, chat template, pieces) may be called
// from any thread at any time. Everything else belongs to the one worker thread that drives the
// context.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model_text.h"
#include "queue/request.h"

namespace llmq {

// One entry of a decode batch: a token at a position of a slot's sequence.
struct BatchEntry {
  Token token;
  std::int32_t pos;    // position within the slot's sequence
  std::int32_t slot;   // sequence id, 0 .. slots-1
  bool logits;         // whether the next token will be sampled from this entry
};

// A token's log-probability under the model.
struct TokenLogprob {
  Token token = 0;
  float logprob = 0;
};

// The log-probabilities at one sampled position: the sampled token's and the likeliest tokens'.
struct PositionLogprobs {
  float sampled = 0;
  std::vector<TokenLogprob> top;  // most likely first
};

// Per-request sampling state (a llama.cpp sampler chain, or the fake's counter). Opaque.
class Sampler {
 public:
  virtual ~Sampler() = default;
};

class Engine : public ModelText {
 public:
  virtual std::int32_t slots() const = 0;         // sequences decoded together
  virtual std::int32_t ctx_per_slot() const = 0;  // tokens one sequence may hold
  virtual std::int32_t batch_tokens() const = 0;  // most tokens one decode call takes

  // --- worker thread only ---
  virtual std::unique_ptr<Sampler> make_sampler(const SamplingParams& params) = 0;
  // Runs the model over the batch. False when the batch could not be decoded (the context is
  // unchanged for the entries of that batch).
  virtual bool decode(const std::vector<BatchEntry>& batch) = 0;
  // Samples the next token from the logits of batch entry `batch_index` of the last decode.
  virtual Token sample(Sampler& sampler, std::int32_t batch_index) = 0;
  // The log-probabilities of the model's own distribution at batch entry `batch_index` of the
  // last decode: the softmax of its raw logits, before penalties, grammar, temperature, top-k
  // and top-p. `sampled`'s, and the `top` likeliest tokens'.
  virtual PositionLogprobs logprobs(std::int32_t batch_index, Token sampled, std::int32_t top) = 0;
  // The embeddings of `inputs` (each non-empty, at most embed_input_limit() tokens), each
  // L2-normalised, pooled as the model's GGUF says (mean pooling when it says none). Decoded
  // together, as many per llama.cpp call as fit. Empty when the model cannot embed.
  virtual std::vector<std::vector<float>> embed(const std::vector<std::vector<Token>>& inputs) = 0;
  // Forgets everything a slot's sequence holds, so the slot can start a new one.
  virtual void clear_slot(std::int32_t slot) = 0;
  // Forgets a slot's sequence from position `keep` on, keeping the KV cache of its first `keep`
  // tokens for the next job that starts with them. False when the model's memory cannot drop a
  // part of a sequence (the slot is then unchanged; clear it instead).
  virtual bool truncate_slot(std::int32_t slot, std::int32_t keep) = 0;
  // Makes slot `to` hold the KV cache of the first `keep` tokens of slot `from` (which may be
  // generating: its cells up to now are what is copied); `to`'s own cells are dropped. False
  // when the model's memory cannot copy (then `to` is empty).
  virtual bool copy_slot_prefix(std::int32_t from, std::int32_t to, std::int32_t keep) = 0;
};

}  // namespace llmq
