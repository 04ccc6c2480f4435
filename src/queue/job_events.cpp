#include "queue/job_events.h"

#include <cmath>
#include <nlohmann/json.hpp>

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
  json operator()(const TokenEvent& e) const { return {{"i", e.index}, {"text", e.text}}; }
  json operator()(const DoneEvent& e) const {
    return {{"finish_reason", e.finish_reason},
            {"usage", usage_json(e.usage)},
            {"timings", timings_json(e.timings)}};
  }
  json operator()(const ErrorEvent& e) const { return {{"code", e.code}, {"message", e.message}}; }
};

}  // namespace

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
