// The request as the queue carries it and the engine runs it, after the API edge has parsed and
// checked it.
//
// `ParsedRequest` is what `parse_request` (api/validation.h) yields from a JSON body: every field
// typed and in range. `ValidatedRequest` adds what needs the model: the prompt rendered through
// the chat template and tokenized, its length checked against the context. Code past the API
// layer takes only a ValidatedRequest and never re-checks a range.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llmq {

using Token = std::int32_t;

// Embedding requests: at most this many inputs per request, and per input at most
// embed_input_limit(context per slot) tokens: the smaller of that context and 512, in whole
// multiples of 64 (llama.cpp sizes a pooled batch's sequences evenly), and at least 64.
inline constexpr std::int32_t kMaxEmbedInputs = 512;
inline constexpr std::int32_t kMaxEmbedInputTokens = 512;
inline std::int32_t embed_input_limit(std::int32_t ctx_per_slot) {
  const std::int32_t tokens = ctx_per_slot < kMaxEmbedInputTokens ? ctx_per_slot : kMaxEmbedInputTokens;
  return tokens < 64 ? 64 : tokens / 64 * 64;
}

// The most choices (OpenAI's `n`) one request may ask for; a server may allow fewer (its slots).
inline constexpr std::int32_t kMaxChoices = 8;

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;  // UTF-8 text
};

// Sampling knobs. Unset optionals mean "the engine's default".
struct SamplingParams {
  double temperature = 0.8;            // 0 = greedy
  std::optional<double> top_p;         // (0, 1]
  std::optional<std::int32_t> top_k;   // >= 0; 0 disables
  std::optional<std::uint32_t> seed;   // fixed seed for reproducible sampling
  double presence_penalty = 0.0;       // -2 … 2, as OpenAI defines it; 0 = off
  double frequency_penalty = 0.0;      // -2 … 2; 0 = off
  std::string grammar;                 // GBNF the output must match (root rule "root"); empty:
                                       // unconstrained. Set by validate_for_model (api/prompt.h)
};

// Structured output as the client asked for it, before it is compiled to a grammar.
struct OutputConstraint {
  enum class Kind {
    grammar,      // `source` is GBNF
    json_schema,  // `source` is a JSON Schema, as JSON text
    json_object,  // any JSON object (`source` empty)
  };
  Kind kind = Kind::grammar;
  std::string source;
  std::string field;  // the request field it came from, named by a refusal
};

// Which API a request came through: it decides the body's rules and the answer's shape.
enum class Dialect {
  native,             // POST /api/v1/req (the contract's own events)
  openai_chat,        // POST /v1/chat/completions
  openai_completion,  // POST /v1/completions
  openai_embedding,   // POST /v1/embeddings
};

struct ParsedRequest {
  std::optional<std::string> prompt;               // exactly one of prompt / messages is set
  std::optional<std::vector<ChatMessage>> messages;
  std::optional<std::string> model;                // absent: the server's default model
  std::int32_t max_tokens = 256;                   // >= 1; the upper bound needs the context size
  SamplingParams sampling;
  std::vector<std::string> stop;                   // at most 4, none empty
  bool stream = true;
  std::optional<std::int64_t> timeout_ms;          // > 0; absent: the server's default deadline
  Dialect dialect = Dialect::native;
  bool include_usage = false;                      // OpenAI stream_options.include_usage
  std::string user;                                // OpenAI `user`: the caller's end user, or empty
  std::optional<std::int64_t> keep_alive_ms;       // how long its model stays loaded after it
                                                   // (Ollama's keep_alive); absent: the default
  std::optional<OutputConstraint> constraint;      // structured output; absent: free text
  std::optional<std::int32_t> top_logprobs;        // set: every token carries its log-probability
                                                   // and this many alternatives (0 … 20)
  std::int32_t n = 1;                              // choices decoded from the one prompt (OpenAI
                                                   // routes; 1 … ParseLimits::max_choices)
  // An embedding request (/v1/embeddings): the texts to embed, instead of a prompt.
  std::vector<std::string> embed_inputs;
  bool embed_base64 = false;                       // encoding_format "base64"
  std::optional<std::int32_t> dimensions;          // must equal the model's, if given
};

struct ValidatedRequest {
  ParsedRequest params;
  std::string model;                 // the resolved model name
  std::vector<Token> prompt_tokens;  // non-empty, shorter than the context; empty for embeddings
  // An embedding job's inputs, each non-empty and within the model's embedding input limit;
  // empty for a completion.
  std::vector<std::vector<Token>> embed_tokens;

  bool is_embedding() const { return !embed_tokens.empty(); }
  std::size_t embed_token_count() const {
    std::size_t n = 0;
    for (const auto& input : embed_tokens) n += input.size();
    return n;
  }
};

}  // namespace llmq
