#include "api/answer.h"

#include <nlohmann/json.hpp>

#include <utility>

#include "http/sse.h"

namespace llmq {

using boost::asio::awaitable;
namespace bhttp = boost::beast::http;

namespace {

// HTTP status for a job that ended in an error, when answering without a stream.
bhttp::status status_of(const ErrorEvent& e) {
  if (e.code == "deadline_exceeded") return bhttp::status::gateway_timeout;
  if (e.code == "shutting_down") return bhttp::status::service_unavailable;
  if (e.code == "too_many_choices") return bhttp::status::bad_request;  // n over a worker's slots
  return bhttp::status::internal_server_error;
}

// A token's text was handed to the socket: how long after its sampling (the flush delay).
void note_flushed(telemetry::ServiceMetrics* metrics, const JobEvent& event) {
  const auto* token = std::get_if<TokenEvent>(&event);
  if (metrics == nullptr || token == nullptr || token->sampled == Clock::time_point{}) return;
  metrics->token_flush().observe(std::chrono::duration<double>(Clock::now() - token->sampled).count());
}

}  // namespace

http::Response error_response(Dialect dialect, const ApiError& err, bool keep_alive) {
  return http::json_response(static_cast<bhttp::status>(err.status),
                             dialect == Dialect::native ? err.to_json() : openai::error_json(err),
                             keep_alive);
}

void note_event(telemetry::RequestRecord& record, const JobEvent& event) {
  if (const auto* started = std::get_if<StartedEvent>(&event)) {
    record.worker = started->worker;
    record.attempts = started->attempt;
    record.queue_ms = started->queue_ms;
  } else if (const auto* done = std::get_if<DoneEvent>(&event)) {
    record.finish_reason = done->finish_reason;
    record.prompt_tokens = done->usage.prompt_tokens;
    record.cached_tokens = done->usage.cached_tokens;
    record.generated_tokens = done->usage.completion_tokens;
    record.queue_ms = done->timings.queue_ms;
    record.ttft_ms = done->timings.ttft_ms;
    record.total_ms = done->timings.total_ms;
    record.decode_tokens_per_s = done->timings.decode_tokens_per_s;
  } else if (const auto* error = std::get_if<ErrorEvent>(&event)) {
    // The reason names of llmq_requests_rejected_total, so both views agree.
    record.rejection_reason = error->code == "deadline_exceeded" ? "deadline" : error->code;
  }
}

awaitable<void> stream_events(JobFollower& follower, EventChannel& channel,
                              http::Exchange& exchange, telemetry::RequestRecord& record,
                              telemetry::ServiceMetrics* metrics) {
  if (!co_await exchange.open_stream(bhttp::status::ok, "text/event-stream", record.request_id)) {
    co_return;
  }
  std::int64_t id = 0;
  JobEvent event = follower.queued();
  while (true) {
    const std::string frame = http::sse_event(id++, event_name(event), event_json(event));
    if (!co_await exchange.write_chunk(frame)) co_return;
    note_flushed(metrics, event);
    if (follower.finished()) break;
    if (channel.note_unsent(exchange.unsent_bytes())) co_return;
    event = co_await follower.next();
    note_event(record, event);
  }
  co_await exchange.close_stream();
}

awaitable<void> answer_once(JobFollower& follower, http::Exchange& exchange,
                            telemetry::RequestRecord& record, Dialect dialect, AnswerBody body) {
  GatheredOutput tokens;
  while (!follower.finished()) {
    JobEvent event = co_await follower.next();
    note_event(record, event);
    if (auto* token = std::get_if<TokenEvent>(&event)) tokens.add(*token);
    if (auto* embedding = std::get_if<EmbeddingEvent>(&event)) tokens.add(*embedding);
    if (auto* error = std::get_if<ErrorEvent>(&event)) {
      ApiError err{static_cast<int>(status_of(*error)), error->code, error->message, {}};
      http::Response response = error_response(dialect, err, exchange.keep_alive());
      response.set("X-Request-Id", record.request_id);
      co_await exchange.reply(std::move(response));
      co_return;
    }
    if (auto* done = std::get_if<DoneEvent>(&event)) {
      http::Response response =
          http::json_response(bhttp::status::ok, body(tokens, *done), exchange.keep_alive());
      response.set("X-Request-Id", record.request_id);
      co_await exchange.reply(std::move(response));
    }
  }
}

std::string native_answer(const std::string& id, const GatheredOutput& tokens, const DoneEvent& done,
                          bool with_logprobs) {
  nlohmann::ordered_json body = {{"id", id},
                                 {"text", tokens.text},
                                 {"finish_reason", done.finish_reason},
                                 {"usage", usage_json(done.usage)},
                                 {"timings", timings_json(done.timings)}};
  if (with_logprobs) {
    auto& entries = body["logprobs"] = nlohmann::ordered_json::array();
    for (const LogprobEntry& entry : tokens.logprobs) entries.push_back(logprob_json(entry));
  }
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

awaitable<void> openai_stream(JobFollower& follower, EventChannel& channel,
                              http::Exchange& exchange, telemetry::RequestRecord& record,
                              openai::Completion& completion,
                              telemetry::ServiceMetrics* metrics) {
  if (!co_await exchange.open_stream(bhttp::status::ok, "text/event-stream", record.request_id)) {
    co_return;
  }
  bool opened = false;  // the chat role chunk went out (a retried job starts twice)
  while (!follower.finished()) {
    JobEvent event = co_await follower.next();
    note_event(record, event);
    std::string frame;
    if (std::holds_alternative<QueuedEvent>(event) || std::holds_alternative<PingEvent>(event) ||
        std::holds_alternative<LoadingEvent>(event) || std::holds_alternative<RequeuedEvent>(event)) {
      frame = openai::Completion::ping();
    } else if (std::holds_alternative<StartedEvent>(event)) {
      if (!std::exchange(opened, true)) frame = completion.opening();
    } else if (const auto* token = std::get_if<TokenEvent>(&event)) {
      frame = completion.delta(*token);
    } else if (const auto* done = std::get_if<DoneEvent>(&event)) {
      frame = completion.ending(*done);
    } else if (const auto* error = std::get_if<ErrorEvent>(&event)) {
      frame = openai::Completion::stream_error(
          {static_cast<int>(status_of(*error)), error->code, error->message, {}});
    }
    if (!co_await exchange.write_chunk(frame)) co_return;
    note_flushed(metrics, event);
    if (channel.note_unsent(exchange.unsent_bytes())) co_return;
  }
  co_await exchange.close_stream();
}

}  // namespace llmq
