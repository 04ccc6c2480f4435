// Parsing of the `POST /api/v1/req` body (and of the OpenAI routes' bodies) into a ParsedRequest (see api/request.h).
//
// Rules (from the contract): malformed JSON, duplicate keys, invalid UTF-8 and a body that is not
// a JSON object are 400 with code "invalid_json"; unknown fields are ignored; a known field of
// the wrong type is 400 "invalid_type" naming it; a value out of range is 400 "out_of_range"
// naming it. Pure function: no I/O, no model, thread-safe.
#pragma once

#include <string_view>
#include <variant>

#include "http/api_error.h"
#include "queue/request.h"

namespace llmq {

struct ParseLimits {
  std::int32_t default_max_tokens = 256;  // used when the body has no max_tokens
  std::int64_t max_timeout_ms = 24LL * 3600 * 1000;
  std::int32_t max_choices = kMaxChoices;  // OpenAI's `n`: at most this many (1 … kMaxChoices)
};

using ParseResult = std::variant<ParsedRequest, ApiError>;

// `dialect` picks the route's rules: the native route's, or OpenAI's (its defaults: stream
// false and temperature 1; its fields n (up to limits.max_choices), stream_options, user; its features llmq lacks refused
// with code "unsupported" unless set to their off value).
ParseResult parse_request(std::string_view body, const ParseLimits& limits = {},
                          Dialect dialect = Dialect::native);

}  // namespace llmq
