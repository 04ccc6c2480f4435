#include "api/openai.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "util/base64.h"

namespace llmq::openai {
namespace {

using json = nlohmann::ordered_json;

// Text from the model is valid UTF-8 by construction, an error message may echo client bytes:
// either way, a serialisation must not throw.
std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string frame(const json& value) { return "data: " + dump(value) + "\n\n"; }

const char* error_type(int status) {
  if (status == 401) return "authentication_error";
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

json openai_usage(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}}};
}

// A choice's finish reason: its own with n > 1, else the job's.
const std::string& finish_reason_of(const DoneEvent& done, std::size_t choice) {
  return choice < done.choice_finish_reasons.size() ? done.choice_finish_reasons[choice]
                                                    : done.finish_reason;
}

}  // namespace

std::string error_json(const ApiError& error) {
  // OpenAI's clients look for this code by name (the contract's own is "context_exceeded").
  const std::string code =
      error.code == "context_exceeded" ? std::string("context_length_exceeded") : error.code;
  json body = {{"message", error.message},
               {"type", error_type(error.status)},
               {"param", error.field ? json(*error.field) : json(nullptr)},
               {"code", code}};
  return dump(json{{"error", std::move(body)}});
}

Completion::Completion(Dialect dialect, std::string_view request_id, std::int64_t created,
                       std::string model, bool include_usage, bool logprobs, std::int32_t choices)
    : dialect_(dialect),
      id_((dialect == Dialect::openai_chat ? "chatcmpl-" : "cmpl-") + std::string(request_id)),
      created_(created),
      model_(std::move(model)),
      include_usage_(include_usage),
      logprobs_(logprobs),
      text_offsets_(static_cast<std::size_t>(std::max(choices, 1)), 0) {}

json Completion::choice_logprobs(const std::vector<LogprobEntry>& entries, std::int32_t choice) {
  if (!logprobs_) return nullptr;
  if (dialect_ == Dialect::openai_chat) {
    json content = json::array();
    for (const LogprobEntry& entry : entries) content.push_back(logprob_json(entry));
    return {{"content", std::move(content)}, {"refusal", nullptr}};
  }
  json tokens = json::array();
  json token_logprobs = json::array();
  json top_logprobs = json::array();
  json text_offset = json::array();
  for (const LogprobEntry& entry : entries) {
    json e = logprob_json(entry);
    tokens.push_back(e["token"]);
    token_logprobs.push_back(entry.logprob);
    json top = json::object();
    for (const json& alt : e["top_logprobs"]) top[alt["token"].get<std::string>()] = alt["logprob"];
    top_logprobs.push_back(std::move(top));
    std::int64_t& offset = text_offsets_[static_cast<std::size_t>(choice)];
    text_offset.push_back(offset);
    offset += static_cast<std::int64_t>(entry.token.size());
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top_logprobs)},
          {"text_offset", std::move(text_offset)}};
}

std::string Completion::opening() const {
  if (dialect_ != Dialect::openai_chat) return {};
  std::string out;
  for (std::size_t index = 0; index < text_offsets_.size(); ++index) {
    json chunk = {{"id", id_},
                  {"object", "chat.completion.chunk"},
                  {"created", created_},
                  {"model", model_},
                  {"choices", json::array({{{"index", index},
                                            {"delta", {{"role", "assistant"}, {"content", ""}}},
                                            {"logprobs", nullptr},
                                            {"finish_reason", nullptr}}})}};
    if (include_usage_) chunk["usage"] = nullptr;
    out += frame(chunk);
  }
  return out;
}

std::string Completion::delta(const TokenEvent& token) {
  const std::string& text = token.text;
  json choice = {{"index", token.choice}};
  json chunk = {{"id", id_}};
  if (dialect_ == Dialect::openai_chat) {
    chunk["object"] = "chat.completion.chunk";
    choice["delta"] = {{"content", text}};
  } else {
    chunk["object"] = "text_completion";
    choice["text"] = text;
  }
  choice["logprobs"] = choice_logprobs(token.logprobs, token.choice);
  choice["finish_reason"] = nullptr;
  chunk["created"] = created_;
  chunk["model"] = model_;
  chunk["choices"] = json::array({std::move(choice)});
  // OpenAI's streams with include_usage carry "usage": null on every chunk but the last.
  if (include_usage_) chunk["usage"] = nullptr;
  return frame(chunk);
}

std::string Completion::ending(const DoneEvent& done) const {
  const bool chat = dialect_ == Dialect::openai_chat;
  const char* object = chat ? "chat.completion.chunk" : "text_completion";
  std::string out;
  for (std::size_t index = 0; index < text_offsets_.size(); ++index) {
    json choice = {{"index", index}};
    if (chat) {
      choice["delta"] = json::object();
    } else {
      choice["text"] = "";
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = finish_reason_of(done, index);
    json last = {{"id", id_},
                 {"object", object},
                 {"created", created_},
                 {"model", model_},
                 {"choices", json::array({std::move(choice)})}};
    if (include_usage_) last["usage"] = nullptr;
    out += frame(last);
  }
  if (include_usage_) {
    out += frame({{"id", id_},
                  {"object", object},
                  {"created", created_},
                  {"model", model_},
                  {"choices", json::array()},
                  {"usage", openai_usage(done.usage)},
                  {"timings", timings_json(done.timings)}});
  }
  out += "data: [DONE]\n\n";
  return out;
}

std::string Completion::stream_error(const ApiError& error) {
  return "data: " + error_json(error) + "\n\n";
}

std::string Completion::ping() { return ": ping\n\n"; }

std::string Completion::whole(const GatheredOutput& tokens, const DoneEvent& done) {
  json choices = json::array();
  for (std::size_t index = 0; index < text_offsets_.size(); ++index) {
    static const ChoiceOutput kNone;
    const bool first = index == 0;
    const ChoiceOutput& other =
        first || index > tokens.other_choices.size() ? kNone : tokens.other_choices[index - 1];
    const std::string& text = first ? tokens.text : other.text;
    json choice = {{"index", index}};
    if (dialect_ == Dialect::openai_chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
    }
    choice["logprobs"] = choice_logprobs(first ? tokens.logprobs : other.logprobs,
                                         static_cast<std::int32_t>(index));
    choice["finish_reason"] = finish_reason_of(done, index);
    choices.push_back(std::move(choice));
  }
  return dump({{"id", id_},
               {"object", dialect_ == Dialect::openai_chat ? "chat.completion" : "text_completion"},
               {"created", created_},
               {"model", model_},
               {"choices", std::move(choices)},
               {"usage", openai_usage(done.usage)},
               {"timings", timings_json(done.timings)}});
}

std::string embeddings_json(const std::vector<std::vector<float>>& embeddings, const std::string& model,
                            const Usage& usage, bool base64) {
  json data = json::array();
  for (std::size_t i = 0; i < embeddings.size(); ++i) {
    json item = {{"object", "embedding"}, {"index", i}};
    if (base64) {
      std::string bytes;
      bytes.reserve(embeddings[i].size() * sizeof(float));
      for (const float v : embeddings[i]) {
        std::uint32_t bits = 0;
        std::memcpy(&bits, &v, sizeof bits);
        for (int b = 0; b < 4; ++b) bytes.push_back(static_cast<char>((bits >> (8 * b)) & 0xFF));
      }
      item["embedding"] = base64_encode(bytes);
    } else {
      item["embedding"] = embeddings[i];
    }
    data.push_back(std::move(item));
  }
  return dump({{"object", "list"},
               {"data", std::move(data)},
               {"model", model},
               {"usage", {{"prompt_tokens", usage.prompt_tokens}, {"total_tokens", usage.prompt_tokens}}}});
}

namespace {

// OpenAI's model object for `id` (a served model's, or an alias of `model`), with `root` (the
// served model it runs on, as vLLM names it) and llmq's `loaded`: whether that model is in
// memory now (a request for one that is not waits for its load: the `loading` event).
json model_object(const ModelCatalog& catalog, const std::string& id, const std::string& model,
                  std::int64_t created) {
  return {{"id", id},
          {"object", "model"},
          {"created", created},
          {"owned_by", "llmq"},
          {"root", model},
          {"loaded", catalog.loaded(model)}};
}

}  // namespace

std::string model_list_json(const ModelCatalog& catalog, std::int64_t created) {
  json data = json::array();
  for (const ServedModel& model : catalog.all()) {
    const std::string& name = model.text->info().name;
    data.push_back(model_object(catalog, name, name, created));
  }
  for (const ModelAlias& alias : catalog.aliases())
    data.push_back(model_object(catalog, alias.name, alias.model, created));
  return dump({{"object", "list"}, {"data", std::move(data)}});
}

std::string model_json(const ModelCatalog& catalog, std::string_view id, const ServedModel& model,
                       std::int64_t created) {
  return dump(model_object(catalog, std::string(id), model.text->info().name, created));
}

}  // namespace llmq::openai
