// Fuzz target: request validation, both halves (api/validation.h, then api/prompt.h against the
// unit tests' fake engine: one token per byte, a trivial chat template, a fixed context).
//
// Input: a request body, parsed as each route would: POST /api/v1/req, /v1/chat/completions,
// /v1/completions and /v1/embeddings (the OpenAI dialects). Invariants, for each:
//  - nothing throws or crashes, whatever the bytes;
//  - a refusal is 400 (404 only for an unknown model) with a known code; a refusal of a field's
//    type or range names the field; its JSON body is valid and carries the same code and field;
//  - a refusal as "not valid JSON" agrees with nlohmann::json::accept, as does an accepted body;
//  - an accepted request has every field in its documented range, and written back as JSON it
//    parses to the same request;
//  - the model half accepts only a prompt of 1 .. ctx-1 tokens and max_tokens <= ctx;
//  - an OpenAI refusal's body (api/openai.h) is valid JSON with the same code and param.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/openai.h"
#include "api/prompt.h"
#include "api/validation.h"
#include "engine/fake_engine.h"
#include "fuzz_check.h"
#include "util/utf8.h"

namespace {

using json = nlohmann::json;
using llmq::ApiError;
using llmq::ParsedRequest;

constexpr std::int32_t kCtx = 512;

// A structured-output constraint written back in the request's dialect.
void put_constraint(const ParsedRequest& r, json& body) {
  using Kind = llmq::OutputConstraint::Kind;
  const llmq::OutputConstraint& c = *r.constraint;
  if (r.dialect == llmq::Dialect::native) {
    if (c.kind == Kind::grammar) body["grammar"] = c.source;
    if (c.kind == Kind::json_schema) body["json_schema"] = json::parse(c.source);
    return;
  }
  if (c.kind == Kind::json_object) {
    body["response_format"] = {{"type", "json_object"}};
  } else {
    body["response_format"] = {{"type", "json_schema"},
                               {"json_schema", {{"schema", json::parse(c.source)}}}};
  }
}

// The request written back as the JSON body that should parse to it again.
json to_body(const ParsedRequest& r) {
  json body = json::object();
  if (r.dialect == llmq::Dialect::openai_embedding) {
    body["input"] = r.embed_inputs;
    if (r.embed_base64) body["encoding_format"] = "base64";
    if (r.dimensions) body["dimensions"] = *r.dimensions;
    if (!r.user.empty()) body["user"] = r.user;
    if (r.model) body["model"] = *r.model;
    if (r.timeout_ms) body["timeout_ms"] = *r.timeout_ms;
    return body;
  }
  if (r.prompt) body["prompt"] = *r.prompt;
  if (r.messages) {
    body["messages"] = json::array();
    for (const auto& m : *r.messages) {
      body["messages"].push_back({{"role", m.role}, {"content", m.content}});
    }
  }
  if (r.model) body["model"] = *r.model;
  body["max_tokens"] = r.max_tokens;
  body["temperature"] = r.sampling.temperature;
  if (r.sampling.top_p) body["top_p"] = *r.sampling.top_p;
  if (r.sampling.top_k) body["top_k"] = *r.sampling.top_k;
  if (r.sampling.seed) body["seed"] = *r.sampling.seed;
  if (r.sampling.presence_penalty != 0) body["presence_penalty"] = r.sampling.presence_penalty;
  if (r.sampling.frequency_penalty != 0) body["frequency_penalty"] = r.sampling.frequency_penalty;
  if (r.include_usage) body["stream_options"] = {{"include_usage", true}};
  if (!r.user.empty()) body["user"] = r.user;
  if (!r.stop.empty()) body["stop"] = r.stop;
  body["stream"] = r.stream;
  if (r.timeout_ms) body["timeout_ms"] = *r.timeout_ms;
  if (r.constraint) put_constraint(r, body);
  if (r.top_logprobs && r.dialect == llmq::Dialect::openai_completion) {
    body["logprobs"] = *r.top_logprobs;
  } else if (r.top_logprobs) {
    body["logprobs"] = true;
    body["top_logprobs"] = *r.top_logprobs;
  }
  return body;
}

bool one_of(const std::string& s, std::initializer_list<std::string_view> options) {
  for (const auto o : options) {
    if (s == o) return true;
  }
  return false;
}

void check_error_body(const ApiError& err) {
  FUZZ_CHECK(!err.message.empty());
  const json body = json::parse(err.to_json());  // throws (a crash) when not JSON
  const json& e = body.at("error");
  FUZZ_CHECK(e.at("code") == err.code);
  FUZZ_CHECK(e.contains("field") == err.field.has_value());
  if (err.field && llmq::is_valid_utf8(*err.field)) FUZZ_CHECK(e.at("field") == *err.field);
  const json openai = json::parse(llmq::openai::error_json(err));
  // OpenAI's name for a prompt past the context; every other code carries over unchanged.
  const std::string openai_code =
      err.code == "context_exceeded" ? std::string("context_length_exceeded") : err.code;
  FUZZ_CHECK(openai.at("error").at("code") == openai_code);
  FUZZ_CHECK(openai.at("error").at("param").is_null() != err.field.has_value());
}

void check_parse_refusal(std::string_view body, const ApiError& err) {
  FUZZ_CHECK(err.status == 400);
  FUZZ_CHECK(one_of(err.code, {"invalid_json", "invalid_type", "out_of_range", "invalid_request",
                               "unsupported", "missing", "invalid_schema"}));
  if (err.code != "invalid_json") FUZZ_CHECK(err.field.has_value());
  if (err.message.starts_with("request body is not valid JSON")) {
    FUZZ_CHECK(!json::accept(body));
  }
  check_error_body(err);
}

void check_ranges(const ParsedRequest& r) {
  if (r.dialect == llmq::Dialect::openai_embedding) {
    FUZZ_CHECK(!r.embed_inputs.empty() && r.embed_inputs.size() <= llmq::kMaxEmbedInputs);
    for (const auto& input : r.embed_inputs) FUZZ_CHECK(!input.empty());
    FUZZ_CHECK(!r.stream && !r.prompt && !r.messages && !r.constraint && !r.top_logprobs);
    return;
  }
  FUZZ_CHECK(r.embed_inputs.empty());
  if (r.top_logprobs) FUZZ_CHECK(*r.top_logprobs >= 0 && *r.top_logprobs <= 20);
  if (r.constraint) FUZZ_CHECK(!r.constraint->field.empty() && r.constraint->source.size() <= 64 * 1024);
  FUZZ_CHECK(r.prompt.has_value() != r.messages.has_value());
  if (r.dialect == llmq::Dialect::openai_chat) FUZZ_CHECK(r.messages.has_value());
  if (r.dialect == llmq::Dialect::openai_completion) FUZZ_CHECK(r.prompt.has_value());
  if (r.dialect == llmq::Dialect::native) FUZZ_CHECK(!r.include_usage && r.user.empty());
  FUZZ_CHECK(r.user.size() <= 256);
  FUZZ_CHECK(r.sampling.presence_penalty >= -2.0 && r.sampling.presence_penalty <= 2.0);
  FUZZ_CHECK(r.sampling.frequency_penalty >= -2.0 && r.sampling.frequency_penalty <= 2.0);
  if (r.prompt) FUZZ_CHECK(!r.prompt->empty());
  if (r.messages) {
    FUZZ_CHECK(!r.messages->empty());
    for (const auto& m : *r.messages) FUZZ_CHECK(one_of(m.role, {"system", "user", "assistant"}));
  }
  if (r.model) FUZZ_CHECK(!r.model->empty());
  FUZZ_CHECK(r.max_tokens >= 1 && r.max_tokens <= 1'000'000);
  FUZZ_CHECK(r.sampling.temperature >= 0.0 && r.sampling.temperature <= 2.0);
  if (r.sampling.top_p) FUZZ_CHECK(*r.sampling.top_p > 0.0 && *r.sampling.top_p <= 1.0);
  if (r.sampling.top_k) FUZZ_CHECK(*r.sampling.top_k >= 0 && *r.sampling.top_k <= 1'000'000);
  FUZZ_CHECK(r.stop.size() <= 4);
  for (const auto& s : r.stop) FUZZ_CHECK(!s.empty());
  const std::int64_t max_timeout_ms = llmq::ParseLimits{}.max_timeout_ms;
  if (r.timeout_ms) FUZZ_CHECK(*r.timeout_ms >= 1 && *r.timeout_ms <= max_timeout_ms);
}

void check_round_trip(const ParsedRequest& r) {
  const json body = to_body(r);
  const llmq::ParseResult again = llmq::parse_request(body.dump(), {}, r.dialect);
  FUZZ_CHECK(std::holds_alternative<ParsedRequest>(again));
  FUZZ_CHECK(to_body(std::get<ParsedRequest>(again)) == body);
}

void check_model_half(ParsedRequest r) {
  static const llmq::testing::FakeEngine model(1, kCtx, kCtx);
  static const llmq::ModelCatalog catalog({{&model, kCtx}});
  const ParsedRequest copy = r;
  const llmq::PromptResult result = llmq::validate_for_model(std::move(r), catalog);
  if (const auto* err = std::get_if<ApiError>(&result)) {
    FUZZ_CHECK(err->status == 400 || (err->status == 404 && err->code == "model_not_found"));
    FUZZ_CHECK(one_of(err->code, {"model_not_found", "out_of_range", "context_exceeded", "unsupported",
                                  "invalid_grammar", "invalid_schema"}));
    FUZZ_CHECK(err->field.has_value());
    check_error_body(*err);
    return;
  }
  const auto& v = std::get<llmq::ValidatedRequest>(result);
  FUZZ_CHECK(v.model == model.info().name);
  if (v.params.dialect == llmq::Dialect::openai_embedding) {
    FUZZ_CHECK(v.embed_tokens.size() == v.params.embed_inputs.size() && v.prompt_tokens.empty());
    for (const auto& input : v.embed_tokens) {
      FUZZ_CHECK(!input.empty() && input.size() <= static_cast<std::size_t>(kCtx));
    }
    FUZZ_CHECK(to_body(v.params) == to_body(copy));
    return;
  }
  FUZZ_CHECK(!v.prompt_tokens.empty() && v.prompt_tokens.size() < static_cast<std::size_t>(kCtx));
  FUZZ_CHECK(v.params.constraint.has_value() == !v.params.sampling.grammar.empty());
  FUZZ_CHECK(v.params.max_tokens <= kCtx);
  FUZZ_CHECK(to_body(v.params) == to_body(copy));
}

void check_dialect(std::string_view body, llmq::Dialect dialect) {
  const llmq::ParseResult result = llmq::parse_request(body, {}, dialect);
  if (const auto* err = std::get_if<ApiError>(&result)) {
    check_parse_refusal(body, *err);
    return;
  }
  const auto& request = std::get<ParsedRequest>(result);
  FUZZ_CHECK(request.dialect == dialect);
  FUZZ_CHECK(json::accept(body));
  check_ranges(request);
  check_round_trip(request);
  check_model_half(request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(bytes), size);
  for (const auto dialect : {llmq::Dialect::native, llmq::Dialect::openai_chat,
                             llmq::Dialect::openai_completion, llmq::Dialect::openai_embedding}) {
    check_dialect(body, dialect);
  }
  return 0;
}
