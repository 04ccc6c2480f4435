#include "api/validation.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/field_readers.h"
#include "api/json_body.h"
#include "api/embedding_fields.h"
#include "api/output_fields.h"
#include "util/keep_alive.h"
#include "util/utf8.h"

namespace llmq {

namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxStop = 4;
constexpr std::size_t kMaxStopBytes = 256;  // per stop sequence
constexpr std::int64_t kMaxTokensCap = 1'000'000;  // the context-size bound is checked later
constexpr std::int64_t kMaxTopK = 1'000'000;

// A message's content: a string, or (as OpenAI clients send it) an array of text parts, which
// are joined. A null content is an empty one (an assistant turn that only called tools).
MaybeError read_content(const json& v, const std::string& field, std::string& out) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return read_string(v, field, out);
  const std::string rule = field + " must be a string or an array of text parts";
  if (!v.is_array()) return bad_field(field, "invalid_type", rule);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string part = field + "[" + std::to_string(i) + "]";
    const json& p = v[i];
    if (!p.is_object()) return bad_field(part, "invalid_type", rule);
    const auto type = p.find("type");
    if (type == p.end() || !type->is_string()) {
      return bad_field(part + ".type", "invalid_type", part + ".type must be a string");
    }
    if (*type != "text") {
      return bad_field(part + ".type", "unsupported",
                       "only text parts are supported, not \"" + type->get<std::string>() + "\"");
    }
    const auto text = p.find("text");
    if (text == p.end()) {
      return bad_field(part + ".text", "invalid_type", part + ".text must be a string");
    }
    std::string piece;
    if (auto e = read_string(*text, part + ".text", piece)) return e;
    out += piece;
  }
  return std::nullopt;
}

MaybeError parse_messages(const json& v, std::vector<ChatMessage>& out) {
  if (!v.is_array()) {
    return bad_field("messages", "invalid_type", "messages must be an array of message objects");
  }
  if (v.empty()) return bad_field("messages", "out_of_range", "messages must not be empty");
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string name = "messages[" + std::to_string(i) + "]";
    const json& m = v[i];
    if (!m.is_object()) {
      return bad_field(name, "invalid_type", name + " must be an object with role and content");
    }
    ChatMessage msg;
    const auto role = m.find("role");
    if (role == m.end()) {
      return bad_field(name + ".role", "invalid_type", name + ".role must be a string");
    }
    if (auto e = read_string(*role, name + ".role", msg.role)) return e;
    // OpenAI's "developer" is its newer name for the system turn.
    if (msg.role == "developer") msg.role = "system";
    if (msg.role == "tool" || msg.role == "function") {
      return bad_field(name + ".role", "unsupported", "tool messages are not supported");
    }
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant") {
      return bad_field(name + ".role", "out_of_range",
                       name + ".role must be \"system\", \"developer\", \"user\" or \"assistant\"");
    }
    const auto content = m.find("content");
    if (content == m.end() || (content->is_null() && msg.role != "assistant")) {
      return bad_field(name + ".content", "invalid_type", name + ".content must be a string");
    }
    if (auto e = read_content(*content, name + ".content", msg.content)) return e;
    out.push_back(std::move(msg));
  }
  return std::nullopt;
}

MaybeError parse_prompt(const json& v, ParsedRequest& req) {
  std::string text;
  if (v.is_array() && req.dialect == Dialect::openai_completion) {
    // OpenAI takes a batch of prompts here; llmq answers one prompt per request.
    if (v.size() != 1) {
      return bad_field("prompt", "unsupported", "prompt must be one string (batches are not supported)");
    }
    if (auto e = read_string(v[0], "prompt", text)) return e;
  } else if (auto e = read_string(v, "prompt", text)) {
    return e;
  }
  if (text.empty()) return bad_field("prompt", "out_of_range", "prompt must not be empty");
  req.prompt = std::move(text);
  return std::nullopt;
}

// What to complete: exactly one of prompt / messages on the native route; messages on
// /v1/chat/completions; prompt on /v1/completions.
MaybeError parse_input(const json& body, ParsedRequest& req) {
  const json* prompt = find_field(body, "prompt");
  const json* messages = find_field(body, "messages");
  switch (req.dialect) {
    case Dialect::openai_chat:
      if (messages == nullptr) return bad_field("messages", "missing", "messages is required");
      return parse_messages(*messages, req.messages.emplace());
    case Dialect::openai_completion:
      if (prompt == nullptr) return bad_field("prompt", "missing", "prompt is required");
      return parse_prompt(*prompt, req);
    case Dialect::openai_embedding:  // parse_embedding_fields reads its input
    case Dialect::native:
      break;
  }
  if ((prompt == nullptr) == (messages == nullptr)) {
    return ApiError{400, "invalid_request", "exactly one of prompt or messages must be given",
                    "prompt"};
  }
  if (messages != nullptr) return parse_messages(*messages, req.messages.emplace());
  return parse_prompt(*prompt, req);
}

MaybeError parse_model(const json& body, ParsedRequest& req) {
  const json* v = find_field(body, "model");
  if (v == nullptr) return std::nullopt;
  std::string model;
  if (auto e = read_string(*v, "model", model)) return e;
  if (model.empty()) return bad_field("model", "out_of_range", "model must not be empty");
  req.model = std::move(model);
  return std::nullopt;
}

MaybeError parse_sampling(const json& body, SamplingParams& s) {
  if (const json* v = find_field(body, "temperature")) {
    const std::string rule = "temperature must be a number between 0 and 2";
    if (auto e = read_number(*v, "temperature", rule, s.temperature)) return e;
    if (!(s.temperature >= 0.0 && s.temperature <= 2.0)) {
      return bad_field("temperature", "out_of_range", rule);
    }
  }
  if (const json* v = find_field(body, "top_p")) {
    const std::string rule = "top_p must be a number greater than 0 and at most 1";
    double top_p = 0;
    if (auto e = read_number(*v, "top_p", rule, top_p)) return e;
    if (!(top_p > 0.0 && top_p <= 1.0)) return bad_field("top_p", "out_of_range", rule);
    s.top_p = top_p;
  }
  std::int64_t n = 0;
  if (const json* v = find_field(body, "top_k")) {
    if (auto e = read_integer(*v, "top_k", 0, kMaxTopK, n)) return e;
    s.top_k = static_cast<std::int32_t>(n);
  }
  if (const json* v = find_field(body, "seed")) {
    if (auto e = read_integer(*v, "seed", 0, UINT32_MAX, n)) return e;
    s.seed = static_cast<std::uint32_t>(n);
  }
  for (auto [name, out] : {std::pair{"presence_penalty", &s.presence_penalty},
                           std::pair{"frequency_penalty", &s.frequency_penalty}}) {
    const json* v = find_field(body, name);
    if (v == nullptr) continue;
    const std::string rule = std::string(name) + " must be a number between -2 and 2";
    if (auto e = read_number(*v, name, rule, *out)) return e;
    if (!(*out >= -2.0 && *out <= 2.0)) return bad_field(name, "out_of_range", rule);
  }
  return std::nullopt;
}

// One stop string: not empty, and short, since the decode thread holds back text against every
// stop string after every token (kMaxStop × kMaxStopBytes bounds that work per token).
MaybeError add_stop(const json& entry, std::vector<std::string>& stop) {
  const std::string& text = entry.get_ref<const std::string&>();
  if (text.empty()) return bad_field("stop", "out_of_range", "stop sequences must not be empty");
  if (text.size() > kMaxStopBytes) {
    return bad_field("stop", "out_of_range",
                     "a stop sequence may have at most " + std::to_string(kMaxStopBytes) +
                         " bytes; this one has " + std::to_string(text.size()));
  }
  stop.push_back(text);
  return std::nullopt;
}

MaybeError parse_stop(const json& body, std::vector<std::string>& stop) {
  const json* v = find_field(body, "stop");
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return add_stop(*v, stop);
  if (!v->is_array()) {
    return bad_field("stop", "invalid_type", "stop must be a string or an array of strings");
  }
  if (v->size() > kMaxStop) {
    return bad_field("stop", "out_of_range", "stop must have at most 4 entries");
  }
  for (const json& entry : *v) {
    if (!entry.is_string()) {
      return bad_field("stop", "invalid_type", "stop entries must be strings");
    }
    if (auto e = add_stop(entry, stop)) return e;
  }
  return std::nullopt;
}

MaybeError parse_limits(const json& body, const ParseLimits& limits, ParsedRequest& req) {
  std::int64_t n = 0;
  // OpenAI's chat route names it max_completion_tokens now; max_tokens is its older name.
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (req.dialect != Dialect::openai_chat && name != std::string_view("max_tokens")) continue;
    if (const json* v = find_field(body, name)) {
      if (auto e = read_integer(*v, name, 1, kMaxTokensCap, n)) return e;
      req.max_tokens = static_cast<std::int32_t>(n);
    }
  }
  if (const json* v = find_field(body, "timeout_ms")) {
    if (auto e = read_integer(*v, "timeout_ms", 1, limits.max_timeout_ms, n)) return e;
    req.timeout_ms = n;
  }
  if (const json* v = find_field(body, "stream")) {
    if (!v->is_boolean()) {
      return bad_field("stream", "invalid_type", "stream must be true or false");
    }
    req.stream = v->get<bool>();
  }
  return std::nullopt;
}

// Ollama's keep_alive (on the OpenAI routes an llmq extension): a duration string or a number of
// seconds, negative to keep the model loaded (util/keep_alive.h).
MaybeError parse_keep_alive_field(const json& body, ParsedRequest& req) {
  const json* v = find_field(body, "keep_alive");
  if (v == nullptr) return std::nullopt;
  const std::string rule =
      "keep_alive must be a duration such as \"5m\", \"30s\" or \"0\", or a number of seconds "
      "(negative: keep the model loaded)";
  std::optional<std::chrono::milliseconds> keep_alive;
  if (v->is_string()) {
    keep_alive = parse_keep_alive(v->get_ref<const std::string&>());
  } else if (v->is_number()) {
    keep_alive = keep_alive_from_seconds(v->get<double>());
  } else {
    return bad_field("keep_alive", "invalid_type", rule);
  }
  if (!keep_alive) return bad_field("keep_alive", "out_of_range", rule);
  req.keep_alive_ms = keep_alive->count();
  return std::nullopt;
}

// A field OpenAI defines for a feature llmq does not have: accepted at its "off" value (which
// clients send by default), refused otherwise so that nobody gets silently different output.
MaybeError refuse_unsupported(const json& body, const char* name, bool (*off)(const json&)) {
  const json* v = find_field(body, name);
  if (v == nullptr || off(*v)) return std::nullopt;
  return bad_field(name, "unsupported", std::string(name) + " is not supported by llmq");
}

MaybeError parse_openai_fields(const json& body, const ParseLimits& limits, ParsedRequest& req) {
  if (const json* v = find_field(body, "n")) {
    std::int64_t n = 0;
    if (auto e = read_integer(*v, "n", 1, limits.max_choices, n)) {
      if (e->code == "out_of_range") {
        e->message += " (the choices are decoded side by side, one slot each; this server has " +
                      std::to_string(limits.max_choices) + " for one request)";
      }
      return e;
    }
    req.n = static_cast<std::int32_t>(n);
  }
  if (const json* v = find_field(body, "stream_options")) {
    if (!v->is_object()) {
      return bad_field("stream_options", "invalid_type", "stream_options must be an object");
    }
    if (const json* u = find_field(*v, "include_usage")) {
      if (!u->is_boolean()) {
        return bad_field("stream_options.include_usage", "invalid_type",
                         "stream_options.include_usage must be true or false");
      }
      req.include_usage = u->get<bool>();
    }
  }
  if (const json* v = find_field(body, "user")) {
    if (auto e = read_string(*v, "user", req.user)) return e;
    constexpr std::size_t kMaxUser = 256;
    if (req.user.size() > kMaxUser) {
      return bad_field("user", "out_of_range", "user must be at most 256 bytes");
    }
  }
  const auto is_false = [](const json& v) { return v.is_boolean() && !v.get<bool>(); };
  const auto is_empty = [](const json& v) { return (v.is_array() || v.is_object()) && v.empty(); };
  const auto is_one = [](const json& v) { return v.is_number() && v.get<double>() == 1.0; };
  const auto is_no_tool = [](const json& v) { return v == "none" || v == "auto"; };
  if (auto e = refuse_unsupported(body, "echo", is_false)) return e;
  if (auto e = refuse_unsupported(body, "best_of", is_one)) return e;
  if (auto e = refuse_unsupported(body, "suffix", [](const json& v) { return v == ""; })) return e;
  if (auto e = refuse_unsupported(body, "logit_bias", is_empty)) return e;
  if (auto e = refuse_unsupported(body, "tools", is_empty)) return e;
  if (auto e = refuse_unsupported(body, "functions", is_empty)) return e;
  if (auto e = refuse_unsupported(body, "tool_choice", is_no_tool)) return e;
  return std::nullopt;
}

}  // namespace

ParseResult parse_request(std::string_view body, const ParseLimits& limits, Dialect dialect) {
  json doc;
  if (auto e = parse_body(body, doc)) return std::move(*e);

  ParsedRequest req;
  req.dialect = dialect;
  req.max_tokens = limits.default_max_tokens;
  if (dialect == Dialect::openai_embedding) {
    if (auto e = parse_embedding_fields(doc, req)) return std::move(*e);
    if (auto e = parse_model(doc, req)) return std::move(*e);
    if (auto e = parse_limits(doc, limits, req)) return std::move(*e);
    if (auto e = parse_keep_alive_field(doc, req)) return std::move(*e);
    req.stream = false;  // an embedding is answered whole
    return req;
  }
  if (dialect != Dialect::native) {
    // OpenAI's defaults: an answer in one piece, sampled at temperature 1.
    req.stream = false;
    req.sampling.temperature = 1.0;
    if (auto e = parse_openai_fields(doc, limits, req)) return std::move(*e);
  }
  if (auto e = parse_input(doc, req)) return std::move(*e);
  if (auto e = parse_model(doc, req)) return std::move(*e);
  if (auto e = parse_limits(doc, limits, req)) return std::move(*e);
  if (auto e = parse_keep_alive_field(doc, req)) return std::move(*e);
  if (auto e = parse_sampling(doc, req.sampling)) return std::move(*e);
  if (auto e = parse_stop(doc, req.stop)) return std::move(*e);
  if (auto e = parse_output_fields(doc, req)) return std::move(*e);
  return req;
}

}  // namespace llmq
