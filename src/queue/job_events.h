// What a job tells its client while it waits and runs: the SSE events of the contract, as data.
// The queue and the worker produce them; http/ frames them (see http/sse.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <variant>
#include <vector>

namespace llmq {

struct QueuedEvent {
  std::string id;           // request id
  std::int64_t position;    // jobs ahead of this one (0 = next)
  std::int64_t queue_depth; // jobs waiting in the queue, this one included
};

struct PingEvent {
  bool running = false;     // false: still waiting in the queue; true: generating
  std::int64_t position;    // jobs ahead (meaningful while waiting)
  std::int64_t waited_ms;   // time in the queue so far (waiting), or since start (running)
};

// The job's model is being loaded into memory (a cold model in a warm pool): the wait is longer.
struct LoadingEvent {
  std::string model;
  std::int64_t waited_ms = 0;  // time since the job arrived
};

// The job runs again (scale-out): its worker was lost ("worker_lost") or stopped and handed it
// back ("worker_stopping"). The client keeps what it has: the next run's tokens go on from there.
struct RequeuedEvent {
  int attempt = 2;     // the run that comes next
  std::string reason;  // "worker_lost" or "worker_stopping"
};

struct StartedEvent {
  std::string worker;       // worker id
  std::int64_t queue_ms;    // time spent waiting
  int attempt = 1;          // 1 for the first run
};

// One input's embedding (an embedding job sends one per input, then `done`).
struct EmbeddingEvent {
  std::int32_t index = 0;        // which input
  std::vector<float> embedding;  // L2-normalised
};

// A sampled token's log-probability (when the request asked for them), with its likeliest
// alternatives. `token` holds the token's bytes, which need not be whole UTF-8 characters.
struct LogprobAlternative {
  std::string token;
  double logprob = 0;
};
struct LogprobEntry {
  std::string token;
  double logprob = 0;
  std::vector<LogprobAlternative> top;  // most likely first
};

struct TokenEvent {
  std::int64_t index;       // 0-based index of this text piece in its choice's stream
  std::string text;         // whole UTF-8 characters only
  std::chrono::steady_clock::time_point sampled{};  // when the worker sampled its last token
  std::vector<LogprobEntry> logprobs{};  // one per token whose text is in `text`, when asked
  std::int32_t choice = 0;  // which of the request's n choices (0 … n-1) the piece belongs to
};

// One choice's text of a job answered without a stream.
struct ChoiceOutput {
  std::string text;
  std::vector<LogprobEntry> logprobs;
};

// What a job produced, gathered into one answer (a request answered without a stream).
struct GatheredOutput {
  std::string text;                   // choice 0's
  std::vector<LogprobEntry> logprobs;  // choice 0's
  std::vector<std::vector<float>> embeddings{};  // by input index
  std::vector<ChoiceOutput> other_choices{};     // choices 1 … n-1 (a request with n > 1)

  void add(TokenEvent& event) {
    std::string* into_text = &text;
    std::vector<LogprobEntry>* into_logprobs = &logprobs;
    if (event.choice > 0) {
      const auto at = static_cast<std::size_t>(event.choice - 1);
      if (other_choices.size() <= at) other_choices.resize(at + 1);
      into_text = &other_choices[at].text;
      into_logprobs = &other_choices[at].logprobs;
    }
    *into_text += event.text;
    for (LogprobEntry& entry : event.logprobs) into_logprobs->push_back(std::move(entry));
  }
  void add(EmbeddingEvent& event) {
    const auto at = static_cast<std::size_t>(event.index);
    if (embeddings.size() <= at) embeddings.resize(at + 1);
    embeddings[at] = std::move(event.embedding);  // a rerun's replaces the first run's
  }
};

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;  // prompt tokens whose KV cache an earlier request left
};

struct Timings {
  std::int64_t queue_ms = 0;
  std::int64_t ttft_ms = 0;          // from start of generation to the first token
  std::int64_t total_ms = 0;         // from arrival to done
  double decode_tokens_per_s = 0.0;  // completion tokens after the first / decode time
};

struct DoneEvent {
  std::string finish_reason;  // "stop", "length" or "cancelled" (choice 0's, with n > 1)
  Usage usage;                // with n > 1: the prompt once, the completions summed
  Timings timings;
  std::vector<std::string> choice_finish_reasons{};  // with n > 1: each choice's, by index
};

struct ErrorEvent {
  std::string code;     // "deadline_exceeded", "engine_failure", "shutting_down", …
  std::string message;
};

using JobEvent =
    std::variant<QueuedEvent, PingEvent, LoadingEvent, RequeuedEvent, StartedEvent, TokenEvent,
                 EmbeddingEvent, DoneEvent, ErrorEvent>;

// The name of the SSE event for each alternative ("queued", "ping", ...).
const char* event_name(const JobEvent& event);

// The event's `data:` payload as one line of JSON.
std::string event_json(const JobEvent& event);

// The `usage` and `timings` objects, shared by `done` and the non-streaming answer.
nlohmann::ordered_json usage_json(const Usage& usage);
nlohmann::ordered_json timings_json(const Timings& timings);

// A token's entry as OpenAI's chat logprobs give it: {"token", "logprob", "bytes",
// "top_logprobs": [{"token", "logprob", "bytes"}]}. `token` is the bytes as text (a byte that
// is not part of a whole UTF-8 character becomes U+FFFD); `bytes` are exact.
nlohmann::ordered_json logprob_json(const LogprobEntry& entry);
// Reads what logprob_json wrote (the worker's events to the gateway); throws
// std::invalid_argument naming what is wrong.
LogprobEntry logprob_from_json(const nlohmann::json& doc);

}  // namespace llmq
