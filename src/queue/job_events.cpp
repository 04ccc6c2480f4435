#include "queue/job_events.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/utf8.h"

namespace llmq {
namespace {

// Ordered, so the fields read in the contract's order.
using json = nlohmann::ordered_json;

struct NameOf {
  const char* operator()(const QueuedEvent&) const { return "queued"; }
  const char* operator()(const PingEvent&) const { return "ping"; }
  const char* operator()(const LoadingEvent&) const { return "loading"; }
  const char* operator()(const RequeuedEvent&) const { return "requeued"; }
  const char* operator()(const StartedEvent&) const { return "started"; }
  const char* operator()(const TokenEvent&) const { return "token"; }
  const char* operator()(const EmbeddingEvent&) const { return "embedding"; }
  const char* operator()(const DoneEvent&) const { return "done"; }
  const char* operator()(const ErrorEvent&) const { return "error"; }
};

// Rounded to 0.1 tokens/s: more digits are noise and make the payload longer.
double round1(double v) { return std::isfinite(v) ? std::round(v * 10.0) / 10.0 : 0.0; }

struct JsonOf {
  json operator()(const QueuedEvent& e) const {
    return {{"id", e.id}, {"position", e.position}, {"queue_depth", e.queue_depth}};
  }
  json operator()(const PingEvent& e) const {
    if (e.running) return {{"running", true}, {"position", 0}, {"waited_ms", e.waited_ms}};
    return {{"position", e.position}, {"waited_ms", e.waited_ms}};
  }
  json operator()(const LoadingEvent& e) const {
    return {{"model", e.model}, {"waited_ms", e.waited_ms}};
  }
  json operator()(const RequeuedEvent& e) const {
    return {{"attempt", e.attempt}, {"reason", e.reason}};
  }
  json operator()(const StartedEvent& e) const {
    return {{"worker", e.worker}, {"queue_ms", e.queue_ms}, {"attempt", e.attempt}};
  }
  json operator()(const TokenEvent& e) const {
    json out{{"i", e.index}, {"text", e.text}};
    if (!e.logprobs.empty()) {
      json& entries = out["logprobs"] = json::array();
      for (const LogprobEntry& entry : e.logprobs) entries.push_back(logprob_json(entry));
    }
    return out;
  }
  json operator()(const EmbeddingEvent& e) const {
    return {{"index", e.index}, {"embedding", e.embedding}};
  }
  json operator()(const DoneEvent& e) const {
    return {{"finish_reason", e.finish_reason},
            {"usage", usage_json(e.usage)},
            {"timings", timings_json(e.timings)}};
  }
  json operator()(const ErrorEvent& e) const { return {{"code", e.code}, {"message", e.message}}; }
};

// A token's bytes as text: whole characters kept, anything else U+FFFD.
std::string token_text(const std::string& bytes) {
  Utf8Split split = take_complete_utf8(bytes);
  if (split.consumed < bytes.size()) split.text += "\xEF\xBF\xBD";
  return split.text;
}

json bytes_json(const std::string& bytes) {
  json out = json::array();
  for (const char c : bytes) out.push_back(static_cast<unsigned char>(c));
  return out;
}

std::string bytes_from_json(const nlohmann::json& doc) {
  if (!doc.is_array()) throw std::invalid_argument("logprobs bytes is not an array");
  std::string out;
  for (const auto& b : doc) {
    if (!b.is_number_unsigned() || b.get<std::uint64_t>() > 255)
      throw std::invalid_argument("logprobs bytes holds a value that is not a byte");
    out.push_back(static_cast<char>(b.get<std::uint64_t>()));
  }
  return out;
}

double logprob_from(const nlohmann::json& doc) {
  const auto it = doc.find("logprob");
  if (it == doc.end() || !it->is_number()) throw std::invalid_argument("logprob is not a number");
  return it->get<double>();
}

}  // namespace

nlohmann::ordered_json logprob_json(const LogprobEntry& entry) {
  json top = json::array();
  for (const LogprobAlternative& alt : entry.top) {
    top.push_back({{"token", token_text(alt.token)},
                   {"logprob", alt.logprob},
                   {"bytes", bytes_json(alt.token)}});
  }
  return {{"token", token_text(entry.token)},
          {"logprob", entry.logprob},
          {"bytes", bytes_json(entry.token)},
          {"top_logprobs", std::move(top)}};
}

LogprobEntry logprob_from_json(const nlohmann::json& doc) {
  if (!doc.is_object()) throw std::invalid_argument("a logprobs entry is not an object");
  LogprobEntry entry;
  entry.token = bytes_from_json(doc.value("bytes", nlohmann::json()));
  entry.logprob = logprob_from(doc);
  const auto top = doc.find("top_logprobs");
  if (top == doc.end() || !top->is_array()) throw std::invalid_argument("top_logprobs is not an array");
  for (const auto& alt : *top) {
    if (!alt.is_object()) throw std::invalid_argument("a top_logprobs entry is not an object");
    entry.top.push_back({bytes_from_json(alt.value("bytes", nlohmann::json())), logprob_from(alt)});
  }
  return entry;
}

nlohmann::ordered_json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"cached_tokens", u.cached_tokens}};
}

nlohmann::ordered_json timings_json(const Timings& t) {
  return {{"queue_ms", t.queue_ms},
          {"ttft_ms", t.ttft_ms},
          {"total_ms", t.total_ms},
          {"decode_tokens_per_s", round1(t.decode_tokens_per_s)}};
}

const char* event_name(const JobEvent& event) { return std::visit(NameOf{}, event); }

std::string event_json(const JobEvent& event) {
  // Replacement instead of throwing: token texts are valid UTF-8 by construction, but a
  // serialisation must never take the server down.
  return std::visit(JsonOf{}, event).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace llmq
