// A deterministic Engine for unit tests of scheduling: no model, instant decode.
//
// Tokens are small integers. tokenize() maps each byte to one token; the "model" always
// predicts the token after the one it was fed (t -> t+1), whose piece is a letter. Every decode
// batch is recorded so tests can check how the scheduler batched.
#pragma once

#include <map>
#include <mutex>
#include <chrono>
#include <cmath>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace llmq::testing {

class FakeEngine final : public Engine {
 public:
  FakeEngine(std::int32_t slots, std::int32_t ctx_per_slot, std::int32_t batch_tokens,
             std::string name = "fake")
      : slots_(slots), ctx_(ctx_per_slot), batch_(batch_tokens) {
    info_.name = std::move(name);
    info_.has_chat_template = true;
    info_.n_embd = 3;  // embed()'s vectors
  }

  const ModelInfo& info() const override { return info_; }
  std::int32_t slots() const override { return slots_; }
  std::int32_t ctx_per_slot() const override { return ctx_; }
  std::int32_t batch_tokens() const override { return batch_; }

  std::vector<Token> tokenize(std::string_view text, bool, bool) const override {
    return {text.begin(), text.end()};
  }
  std::optional<std::string> apply_chat_template(const std::vector<ChatMessage>& m) const override {
    std::string out;
    for (const auto& msg : m) out += msg.role + ":" + msg.content + "\n";
    return out;
  }
  std::string token_piece(Token token) const override {
    std::lock_guard lock(mu_);
    if (auto it = pieces_.find(token); it != pieces_.end()) return it->second;
    return std::string(1, static_cast<char>('a' + token % 26));
  }
  bool is_end_of_generation(Token token) const override {
    std::lock_guard lock(mu_);
    return eog_.count(token) > 0;
  }

  // Any grammar is accepted as is, except the text "invalid".
  CompiledGrammar compile_constraint(const OutputConstraint& c) const override {
    if (c.source == "invalid") return {"", "the fake refuses it"};
    return {c.source, ""};
  }

  std::unique_ptr<Sampler> make_sampler(const SamplingParams&) override {
    return std::make_unique<Sampler>();
  }
  bool decode(const std::vector<BatchEntry>& batch) override {
    std::chrono::microseconds cost{0};
    {
      std::lock_guard lock(mu_);
      cost = step_cost_;
      for (const auto& e : batch) cost += e.logits ? std::chrono::microseconds(0) : prompt_token_cost_;
    }
    if (cost.count() > 0) std::this_thread::sleep_for(cost);
    std::lock_guard lock(mu_);
    batches_.push_back(batch);
    last_ = batch;
    if (fail_decodes_ > 0) {
      --fail_decodes_;
      return false;
    }
    return true;
  }
  Token sample(Sampler&, std::int32_t batch_index) override {
    std::lock_guard lock(mu_);
    return last_.at(static_cast<std::size_t>(batch_index)).token + 1;
  }
  // The sampled token at -0.5, then `top` tokens counting down from it at -1, -2, …
  PositionLogprobs logprobs(std::int32_t, Token sampled, std::int32_t top) override {
    PositionLogprobs out{-0.5F, {}};
    for (std::int32_t i = 0; i < top; ++i) out.top.push_back({sampled + i, -1.0F - static_cast<float>(i)});
    return out;
  }
  // Per input: {its length, its first token, 1}, normalised; empty when set_embed_fails().
  std::vector<std::vector<float>> embed(const std::vector<std::vector<Token>>& inputs) override {
    std::lock_guard lock(mu_);
    embed_calls_.push_back(inputs.size());
    if (embed_fails_) return {};
    std::vector<std::vector<float>> out;
    for (const auto& input : inputs) {
      std::vector<float> v{static_cast<float>(input.size()), static_cast<float>(input.front()), 1.0F};
      float norm = 0;
      for (float x : v) norm += x * x;
      for (float& x : v) x /= std::sqrt(norm);
      out.push_back(v);
    }
    return out;
  }
  void clear_slot(std::int32_t slot) override {
    std::lock_guard lock(mu_);
    cleared_.push_back(slot);
  }
  bool copy_slot_prefix(std::int32_t from, std::int32_t to, std::int32_t keep) override {
    std::lock_guard lock(mu_);
    copies_.push_back({from, to, keep});
    return true;
  }
  bool truncate_slot(std::int32_t slot, std::int32_t keep) override {
    std::lock_guard lock(mu_);
    truncated_.emplace_back(slot, keep);
    return true;
  }

  // --- test controls and observations (any thread) ---
  void set_piece(Token token, std::string piece) {
    std::lock_guard lock(mu_);
    pieces_[token] = std::move(piece);
  }
  void set_embed_fails() {
    std::lock_guard lock(mu_);
    embed_fails_ = true;
  }
  // How many inputs each embed() call took.
  std::vector<std::size_t> embed_calls() const {
    std::lock_guard lock(mu_);
    return embed_calls_;
  }
  void set_end_of_generation(Token token) {
    std::lock_guard lock(mu_);
    eog_.insert(token);
  }
  // Makes decode() take time like a real model: `step` per call plus `prompt_token` per entry
  // that asks for no logits (a prompt token that is not its prompt's last).
  void set_costs(std::chrono::microseconds step, std::chrono::microseconds prompt_token) {
    std::lock_guard lock(mu_);
    step_cost_ = step;
    prompt_token_cost_ = prompt_token;
  }
  struct Copy {
    std::int32_t from, to, keep;
  };
  std::vector<Copy> copies() const {
    std::lock_guard lock(mu_);
    return copies_;
  }
  std::vector<std::pair<std::int32_t, std::int32_t>> truncated() const {
    std::lock_guard lock(mu_);
    return truncated_;
  }
  void fail_next_decodes(int n) {
    std::lock_guard lock(mu_);
    fail_decodes_ = n;
  }
  std::vector<std::vector<BatchEntry>> batches() const {
    std::lock_guard lock(mu_);
    return batches_;
  }
  std::vector<std::int32_t> cleared() const {
    std::lock_guard lock(mu_);
    return cleared_;
  }

 private:
  const std::int32_t slots_, ctx_, batch_;
  ModelInfo info_;
  mutable std::mutex mu_;
  std::map<Token, std::string> pieces_;
  std::set<Token> eog_;
  int fail_decodes_ = 0;
  std::vector<BatchEntry> last_;
  std::vector<std::vector<BatchEntry>> batches_;
  std::vector<std::int32_t> cleared_;
  std::vector<std::pair<std::int32_t, std::int32_t>> truncated_;  // (slot, kept tokens)
  std::vector<Copy> copies_;
  std::vector<std::size_t> embed_calls_;
  bool embed_fails_ = false;
  std::chrono::microseconds step_cost_{0}, prompt_token_cost_{0};
};

}  // namespace llmq::testing
