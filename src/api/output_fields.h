// The request fields that shape the output rather than the input: structured output (a grammar,
// a JSON Schema, or OpenAI's response_format) and log-probabilities.
//
// Native route: `json_schema` (a schema object) or `grammar` (GBNF text), at most one;
// `logprobs` (bool) and `top_logprobs` (0 … 20).
// /v1/chat/completions: `response_format` {"type": "text" | "json_object" | "json_schema"},
// `logprobs` (bool) and `top_logprobs` (0 … 20, needs logprobs true).
// /v1/completions: `response_format` as on chat, `logprobs` (an integer 0 … 20, the number of
// alternatives).
//
// What can be checked without a model is checked here: types, and the size of what a schema or
// grammar asks to repeat (a repetition count becomes that many grammar rules). Compiling to a
// grammar and parsing it happen later, against the model (ModelText::compile_constraint).
#pragma once

#include <nlohmann/json.hpp>

#include "api/field_readers.h"
#include "queue/request.h"

namespace llmq {

inline constexpr std::int32_t kMaxTopLogprobs = 20;
inline constexpr std::size_t kMaxGrammarBytes = 64 * 1024;  // GBNF text or schema JSON
inline constexpr std::int64_t kMaxRepetition = 1000;        // minItems, maxLength, {m,n}, …

// Reads the fields of `req.dialect` into req.constraint and req.top_logprobs.
MaybeError parse_output_fields(const nlohmann::json& body, ParsedRequest& req);

}  // namespace llmq
