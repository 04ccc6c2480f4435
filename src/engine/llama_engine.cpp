#include "engine/llama_engine.h"

#include <llama.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace llmq {
namespace {

// A request's sampler chain, and its grammar (structured output) kept out of the chain: the
// chain picks a token first and the grammar only checks it, since masking the whole vocabulary
// every step costs far more than checking one token (llama.cpp's own server does the same).
class LlamaSampler final : public Sampler {
 public:
  LlamaSampler(llama_sampler* chain, llama_sampler* grammar, bool argmax)
      : chain_(chain), grammar_(grammar), argmax_(argmax) {}
  ~LlamaSampler() override {
    llama_sampler_free(chain_);
    if (grammar_ != nullptr) llama_sampler_free(grammar_);
  }
  LlamaSampler(const LlamaSampler&) = delete;
  LlamaSampler& operator=(const LlamaSampler&) = delete;
  llama_sampler* chain() const { return chain_; }
  llama_sampler* grammar() const { return grammar_; }
  // The chain is greedy and nothing else: the token is the likeliest, read off the logits.
  bool argmax() const { return argmax_; }

 private:
  llama_sampler* chain_;    // owned
  llama_sampler* grammar_;  // owned; null without structured output
  bool argmax_;
};

// OpenAI's floor for a log-probability too small to print.
constexpr float kLogprobFloor = -9999.0F;

// Defaults of llama.cpp's own server, so an unset knob samples as users of it expect.
constexpr std::int32_t kDefaultTopK = 40;
constexpr float kDefaultTopP = 0.95F;
constexpr std::int32_t kPenaltyWindow = 64;

// Any ordinary text: the warm-up needs real tokens, not their meaning.
constexpr std::string_view kWarmUpText =
    "Warm-up: every slot decodes this text once before the server reports ready, so that a "
    "kernel which cannot run on this CPU fails at start and not on a request.";

}  // namespace

LlamaEngine::LlamaEngine(const LlamaEngineOptions& options)
    : options_(options), text_(options.model_path, /*vocab_only=*/false) {
  llama_model* model = text_.model();
  const std::int32_t threads = options_.threads > 0
                                   ? options_.threads
                                   : static_cast<std::int32_t>(std::thread::hardware_concurrency());
  llama_context_params cparams = llama_context_default_params();
  cparams.n_ctx = static_cast<std::uint32_t>(options_.ctx_per_slot * options_.slots);
  cparams.n_seq_max = static_cast<std::uint32_t>(options_.slots);
  cparams.n_batch = static_cast<std::uint32_t>(options_.batch_tokens);
  cparams.n_ubatch = static_cast<std::uint32_t>(options_.batch_tokens);
  cparams.n_threads = threads;
  cparams.n_threads_batch = threads;
  cparams.kv_unified = false;
  ctx_threads_ = threads;
  ctx_ = llama_init_from_model(model, cparams);
  if (ctx_ == nullptr) {
    throw std::runtime_error("cannot create a llama.cpp context of " +
                             std::to_string(cparams.n_ctx) + " tokens for " +
                             options_.model_path);
  }
  batch_ = llama_batch_init(options_.batch_tokens, 0, 1);
}

WarmUpReport LlamaEngine::warm_up() {
  const auto start = std::chrono::steady_clock::now();
  std::vector<Token> text = tokenize(kWarmUpText, true, false);
  if (text.empty()) text.push_back(0);
  // One slot takes a longer chunk (a prompt's path through the matrix kernels), the others a
  // short one each; all in one batch, as the scheduler builds them.
  // Every slot, unless a decode step cannot hold a token of each (--batch-size below --slots).
  const std::int32_t slots = std::min(options_.slots, options_.batch_tokens);
  const std::int32_t room = std::max(1, std::min(options_.ctx_per_slot - 1, options_.batch_tokens));
  const std::int32_t short_len = std::max(1, std::min({8, room, options_.batch_tokens / slots}));
  const std::int32_t long_len = std::max(
      short_len, std::min({64, room, options_.batch_tokens - short_len * (slots - 1)}));
  WarmUpReport report;
  std::vector<BatchEntry> batch;
  std::vector<std::int32_t> lengths;
  for (std::int32_t slot = 0; slot < slots; ++slot) {
    const std::int32_t len = slot == 0 ? long_len : short_len;
    for (std::int32_t pos = 0; pos < len; ++pos)
      batch.push_back({text[static_cast<std::size_t>(pos) % text.size()], pos, slot, pos == len - 1});
    lengths.push_back(len);
  }
  auto run = [&](const std::vector<BatchEntry>& entries) {
    if (!decode(entries)) throw std::runtime_error("warm-up decode failed on this CPU");
    report.tokens += static_cast<std::int32_t>(entries.size());
    ++report.decodes;
  };
  run(batch);
  // Sample each slot's next token, then decode them together: the generating path.
  SamplingParams greedy_params;
  greedy_params.temperature = 0;
  std::unique_ptr<Sampler> greedy = make_sampler(greedy_params);
  std::vector<BatchEntry> step;
  std::int32_t index = -1;
  for (std::int32_t slot = 0; slot < slots; ++slot) {
    index += lengths[static_cast<std::size_t>(slot)];
    step.push_back({sample(*greedy, index), lengths[static_cast<std::size_t>(slot)], slot, true});
  }
  run(step);
  for (std::int32_t slot = 0; slot < slots; ++slot) clear_slot(slot);
  report.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return report;
}

LlamaEngine::~LlamaEngine() {
  llama_batch_free(batch_);
  if (embed_ctx_ != nullptr) llama_free(embed_ctx_);
  llama_free(ctx_);
}

std::vector<Token> LlamaEngine::tokenize(std::string_view text, bool add_special,
                                         bool parse_special) const {
  return text_.tokenize(text, add_special, parse_special);
}

std::optional<std::string> LlamaEngine::apply_chat_template(
    const std::vector<ChatMessage>& messages) const {
  return text_.apply_chat_template(messages);
}

std::string LlamaEngine::token_piece(Token token) const { return text_.token_piece(token); }

bool LlamaEngine::is_end_of_generation(Token token) const {
  return text_.is_end_of_generation(token);
}

std::unique_ptr<Sampler> LlamaEngine::make_sampler(const SamplingParams& params) {
  llama_sampler* chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
  const bool penalties = params.presence_penalty != 0.0 || params.frequency_penalty != 0.0;
  if (penalties) {
    // OpenAI's penalties, over the last kPenaltyWindow tokens (llama-server's default window).
    llama_sampler_chain_add(chain, llama_sampler_init_penalties(
                                       text_.info().n_vocab, kPenaltyWindow, 1.0F,
                                       static_cast<float>(params.frequency_penalty),
                                       static_cast<float>(params.presence_penalty)));
  }
  if (params.temperature <= 0.0) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
  } else {
    const std::int32_t top_k = params.top_k.value_or(kDefaultTopK);
    if (top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(top_k));
    const auto top_p = static_cast<float>(params.top_p.value_or(kDefaultTopP));
    llama_sampler_chain_add(chain, llama_sampler_init_top_p(top_p, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_temp(static_cast<float>(params.temperature)));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(params.seed.value_or(LLAMA_DEFAULT_SEED)));
  }
  llama_sampler* grammar = nullptr;
  if (!params.grammar.empty()) {
    // Checked at admission (ModelText::compile_constraint); null here means it changed since.
    grammar = llama_sampler_init_grammar(llama_model_get_vocab(text_.model()),
                                         params.grammar.c_str(), "root");
    if (grammar == nullptr) {
      llama_sampler_free(chain);
      throw std::runtime_error("llama.cpp refused the request's grammar");
    }
  }
  const bool argmax = params.temperature <= 0.0 && !penalties && grammar == nullptr;
  return std::make_unique<LlamaSampler>(chain, grammar, argmax);
}

bool LlamaEngine::decode(const std::vector<BatchEntry>& entries) {
  if (entries.size() > static_cast<std::size_t>(options_.batch_tokens)) return false;
  batch_.n_tokens = 0;
  for (const BatchEntry& e : entries) {
    const std::int32_t i = batch_.n_tokens++;
    batch_.token[i] = e.token;
    batch_.pos[i] = e.pos;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = e.slot;
    batch_.logits[i] = e.logits ? 1 : 0;
  }
  const std::int32_t rc = llama_decode(ctx_, batch_);
  if (rc != 0) spdlog::warn("llama_decode returned {} for a batch of {} tokens", rc, entries.size());
  return rc == 0;
}

llama_token_data_array LlamaEngine::fill_candidates(std::int32_t batch_index) {
  const float* logits = llama_get_logits_ith(ctx_, batch_index);
  const auto n_vocab = static_cast<std::size_t>(text_.info().n_vocab);
  candidates_.resize(n_vocab);
  for (std::size_t i = 0; i < n_vocab; ++i) {
    candidates_[i] = {static_cast<llama_token>(i), logits[i], 0.0F};
  }
  return {candidates_.data(), n_vocab, -1, false};
}

Token LlamaEngine::sample(Sampler& sampler, std::int32_t batch_index) {
  auto& s = static_cast<LlamaSampler&>(sampler);
  if (s.argmax()) {
    // What llama.cpp's greedy sampler picks (the first of equal logits), without first copying
    // the whole vocabulary into a candidate array as llama_sampler_sample does.
    const float* logits = llama_get_logits_ith(ctx_, batch_index);
    return static_cast<Token>(std::max_element(logits, logits + text_.info().n_vocab) - logits);
  }
  if (s.grammar() == nullptr) return llama_sampler_sample(s.chain(), ctx_, batch_index);
  llama_token_data_array all = fill_candidates(batch_index);
  llama_sampler_apply(s.chain(), &all);
  Token token = all.data[all.selected].id;
  llama_token_data single_data{token, 1.0F, 0.0F};
  llama_token_data_array single{&single_data, 1, -1, false};
  llama_sampler_apply(s.grammar(), &single);
  if (std::isinf(single_data.logit)) {
    // The grammar forbids the chain's pick: mask the vocabulary, then sample again.
    all = fill_candidates(batch_index);
    llama_sampler_apply(s.grammar(), &all);
    llama_sampler_apply(s.chain(), &all);
    token = all.data[all.selected].id;
  }
  try {
    llama_sampler_accept(s.grammar(), token);
  } catch (const std::exception& e) {
    // Only a token the grammar allowed gets here; should llama.cpp still refuse it, the
    // output ends (as at the grammar's end) instead of taking the worker down.
    spdlog::warn("grammar refused an allowed token: {}", e.what());
    return llama_vocab_eos(llama_model_get_vocab(text_.model()));
  }
  llama_sampler_accept(s.chain(), token);
  return token;
}

PositionLogprobs LlamaEngine::logprobs(std::int32_t batch_index, Token sampled, std::int32_t top) {
  const float* logits = llama_get_logits_ith(ctx_, batch_index);
  const auto n_vocab = static_cast<std::size_t>(text_.info().n_vocab);
  const float max_logit = *std::max_element(logits, logits + n_vocab);
  double sum = 0;
  for (std::size_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max_logit));
  const auto log_z = static_cast<float>(max_logit + std::log(sum));
  const auto logprob = [&](Token t) {
    return std::max(kLogprobFloor, logits[static_cast<std::size_t>(t)] - log_z);
  };
  PositionLogprobs out;
  out.sampled = logprob(sampled);
  if (top <= 0) return out;
  // The `top` likeliest in one pass: a small min-heap by logit.
  const auto by_logit_desc = [&](Token a, Token b) {
    return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)];
  };
  std::vector<Token> heap;
  heap.reserve(static_cast<std::size_t>(top) + 1);
  for (std::size_t i = 0; i < n_vocab; ++i) {
    const auto t = static_cast<Token>(i);
    if (heap.size() < static_cast<std::size_t>(top)) {
      heap.push_back(t);
      std::push_heap(heap.begin(), heap.end(), by_logit_desc);
    } else if (logits[i] > logits[static_cast<std::size_t>(heap.front())]) {
      std::pop_heap(heap.begin(), heap.end(), by_logit_desc);
      heap.back() = t;
      std::push_heap(heap.begin(), heap.end(), by_logit_desc);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), by_logit_desc);
  for (const Token t : heap) out.top.push_back({t, logprob(t)});
  return out;
}

llama_context* LlamaEngine::embedding_context() {
  if (embed_ctx_ != nullptr || embed_ctx_failed_) return embed_ctx_;
  const auto limit = static_cast<std::uint32_t>(embed_input_limit(options_.ctx_per_slot));
  llama_context_params cparams = llama_context_default_params();
  cparams.n_ctx = limit;
  cparams.n_batch = limit;
  cparams.n_ubatch = limit;  // a pooled sequence must lie whole in one micro-batch
  cparams.n_seq_max = 1;
  cparams.n_threads = ctx_threads_;
  cparams.n_threads_batch = ctx_threads_;
  cparams.embeddings = true;
  embed_ctx_ = llama_init_from_model(text_.model(), cparams);
  if (embed_ctx_ != nullptr && llama_pooling_type(embed_ctx_) == LLAMA_POOLING_TYPE_NONE) {
    // A generative model's GGUF names no pooling: the mean of its token states.
    llama_free(embed_ctx_);
    cparams.pooling_type = LLAMA_POOLING_TYPE_MEAN;
    embed_ctx_ = llama_init_from_model(text_.model(), cparams);
  }
  if (embed_ctx_ == nullptr || llama_pooling_type(embed_ctx_) == LLAMA_POOLING_TYPE_RANK) {
    spdlog::error("{}: cannot make an embedding context", text_.info().name);
    if (embed_ctx_ != nullptr) llama_free(embed_ctx_);
    embed_ctx_ = nullptr;
    embed_ctx_failed_ = true;
  }
  return embed_ctx_;
}

std::vector<std::vector<float>> LlamaEngine::embed(const std::vector<std::vector<Token>>& inputs) {
  llama_context* ctx = embedding_context();
  if (ctx == nullptr) return {};
  const std::int32_t limit = embed_input_limit(options_.ctx_per_slot);
  const auto n_embd = static_cast<std::size_t>(llama_model_n_embd_out(text_.model()));
  const bool encoder = llama_model_has_encoder(text_.model()) && !llama_model_has_decoder(text_.model());
  std::vector<std::vector<float>> out;
  out.reserve(inputs.size());
  llama_batch batch = llama_batch_init(limit, 0, 1);
  // One input per decode. Decoded beside others, a text's vector would depend on them: llama.cpp's
  // CPU kernels take other paths for other batch shapes (flash attention in tiles from 64 query
  // rows on, the tiles' alignment in a shared KV pool), and the last-bit differences grow to
  // about 1e-2 through the layers (measured on SmolLM2-135M; docs/outputs.md, "Embeddings").
  for (const std::vector<Token>& input : inputs) {
    if (input.empty() || input.size() > static_cast<std::size_t>(limit)) break;  // checked at admission
    batch.n_tokens = 0;
    for (std::size_t pos = 0; pos < input.size(); ++pos) {
      const std::int32_t i = batch.n_tokens++;
      batch.token[i] = input[pos];
      batch.pos[i] = static_cast<llama_pos>(pos);
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = 1;
    }
    llama_memory_clear(llama_get_memory(ctx), true);
    const std::int32_t rc = encoder ? llama_encode(ctx, batch) : llama_decode(ctx, batch);
    const float* e = rc == 0 ? llama_get_embeddings_seq(ctx, 0) : nullptr;
    if (e == nullptr) {
      spdlog::warn("embedding decode returned {} for an input of {} tokens", rc, input.size());
      break;
    }
    std::vector<float> v(e, e + n_embd);
    double norm = 0;
    for (const float x : v) norm += static_cast<double>(x) * x;
    norm = std::sqrt(norm);
    if (norm > 0) {
      for (float& x : v) x = static_cast<float>(x / norm);
    }
    out.push_back(std::move(v));
  }
  llama_batch_free(batch);
  if (out.size() != inputs.size()) return {};
  return out;
}

void LlamaEngine::clear_slot(std::int32_t slot) {
  llama_memory_seq_rm(llama_get_memory(ctx_), slot, -1, -1);
}

bool LlamaEngine::truncate_slot(std::int32_t slot, std::int32_t keep) {
  return llama_memory_seq_rm(llama_get_memory(ctx_), slot, keep, -1);
}

bool LlamaEngine::copy_slot_prefix(std::int32_t from, std::int32_t to, std::int32_t keep) {
  llama_memory_t memory = llama_get_memory(ctx_);
  // Sequences live in separate KV streams here (kv_unified false): llama.cpp copies a whole
  // stream, cells and buffers (the buffers at the start of the next decode, before that
  // decode writes anything), and the part after the prefix is then dropped from the copy.
  llama_memory_seq_rm(memory, to, -1, -1);
  llama_memory_seq_cp(memory, from, to, -1, -1);
  const bool cut = llama_memory_seq_rm(memory, to, keep, -1);
  // Memories that share cells between layers copy nothing; the positions tell.
  if (!cut || llama_memory_seq_pos_max(memory, to) != keep - 1 ||
      llama_memory_seq_pos_min(memory, to) != 0) {
    llama_memory_seq_rm(memory, to, -1, -1);
    return false;
  }
  return true;
}

}  // namespace llmq
