// The OpenAI-compatible answers: the JSON that /v1/chat/completions, /v1/completions and
// /v1/models send, shaped as OpenAI's API reference defines it, so that its SDKs and the tools
// built on them read llmq unchanged.
//
// Pure functions of plain data: the API handler follows the job and calls these to frame what
// it sends (see api_handler.cpp). The requests themselves are parsed by parse_request with an
// OpenAI Dialect (api/validation.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model_catalog.h"
#include "http/api_error.h"
#include "queue/job_events.h"
#include "queue/request.h"

namespace llmq::openai {

// {"error":{"message","type","param","code"}}: OpenAI's error body for one of our refusals.
// `type` follows the status: invalid_request_error (4xx), authentication_error (401),
// rate_limit_error (429), server_error (5xx); `code` is the contract's code, except that
// context_exceeded is OpenAI's context_length_exceeded.
std::string error_json(const ApiError& error);

// The answer to one completion request, in pieces as it is streamed or whole at its end.
class Completion {
 public:
  // `request_id`: the job's id; `created`: unix seconds of its arrival; `logprobs`: whether the
  // request asked for log-probabilities (the choices then carry them); `choices`: its n.
  Completion(Dialect dialect, std::string_view request_id, std::int64_t created, std::string model,
             bool include_usage, bool logprobs = false, std::int32_t choices = 1);

  // The answer's id: "chatcmpl-<request id>" or "cmpl-<request id>".
  const std::string& id() const { return id_; }

  // --- streaming: each returns one SSE frame ("data: {…}\n\n") ---
  // The chat stream's first chunks: the assistant role with empty content, one per choice.
  // Empty for /v1/completions.
  std::string opening() const;
  // A piece of the answer (and its tokens' log-probabilities). Not const: /v1/completions
  // counts text offsets across the stream.
  std::string delta(const TokenEvent& token);
  // The chunks carrying each choice's finish reason, then (with include_usage) the usage chunk,
  // then [DONE].
  std::string ending(const DoneEvent& done) const;
  // An error after the stream began: a frame with the error body; the stream ends there.
  static std::string stream_error(const ApiError& error);
  // A comment frame, ": ping", that keeps a waiting stream alive; clients skip it.
  static std::string ping();

  // --- not streaming: the whole answer ---
  std::string whole(const GatheredOutput& tokens, const DoneEvent& done);

 private:
  // A choice's `logprobs`: null when not asked; chat's {"content": [...]} or the legacy
  // {"tokens", "token_logprobs", "top_logprobs", "text_offset"} of /v1/completions.
  nlohmann::ordered_json choice_logprobs(const std::vector<LogprobEntry>& entries,
                                         std::int32_t choice);

  Dialect dialect_;
  std::string id_;
  std::int64_t created_;
  std::string model_;
  bool include_usage_;
  bool logprobs_;
  // Per choice (their number is n): bytes of answer text the legacy logprobs have covered.
  std::vector<std::int64_t> text_offsets_;
};

// The answer of POST /v1/embeddings: {"object":"list","data":[{"object":"embedding","index",
// "embedding"}],"model","usage":{"prompt_tokens","total_tokens"}}; each embedding an array of
// floats, or with `base64` its float32 values, little-endian, in base64.
std::string embeddings_json(const std::vector<std::vector<float>>& embeddings, const std::string& model,
                            const Usage& usage, bool base64);

// GET /v1/models and GET /v1/models/{id}: the list (served models, then aliases), or one model
// object: `id` as asked (a served model's or an alias), `model` the one it names.
std::string model_list_json(const ModelCatalog& catalog, std::int64_t created);
std::string model_json(const ModelCatalog& catalog, std::string_view id, const ServedModel& model,
                       std::int64_t created);

}  // namespace llmq::openai
