// Answering a job: following its events to the client in the framing of the route it came
// through. The native route streams the contract's SSE events; OpenAI's routes stream `data:`
// chunks (api/openai.h); both answer once, as JSON, when the client asked for no stream. Every
// event that passes also lands in the request's document record.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string>

#include "api/event_channel.h"
#include "api/job_follower.h"
#include "api/openai.h"
#include "http/api_error.h"
#include "http/server.h"
#include "queue/request.h"
#include "telemetry/request_document.h"
#include "telemetry/service_metrics.h"

namespace llmq {

// The refusal of the route's API: the contract's error body, or OpenAI's error shape.
http::Response error_response(Dialect dialect, const ApiError& err, bool keep_alive);

// Keeps what the request's document needs from an event on its way to the client.
void note_event(telemetry::RequestRecord& record, const JobEvent& event);

// Follows the job as the contract's SSE stream until its done/error event, until the stream
// breaks, or until the client has left too much unread (the channel overflows). Each token's
// flush delay goes to `metrics` (may be null).
boost::asio::awaitable<void> stream_events(JobFollower& follower, EventChannel& channel,
                                           http::Exchange& exchange,
                                           telemetry::RequestRecord& record,
                                           telemetry::ServiceMetrics* metrics);

// Follows the job as an OpenAI stream: `data: {chunk}` frames and `data: [DONE]`, with
// `: ping` comments while it waits (OpenAI's clients know no queue events and skip comments).
boost::asio::awaitable<void> openai_stream(JobFollower& follower, EventChannel& channel,
                                           http::Exchange& exchange,
                                           telemetry::RequestRecord& record,
                                           openai::Completion& completion,
                                           telemetry::ServiceMetrics* metrics);

// What a non-streaming answer's body is made of: the tokens and the job's done event.
using AnswerBody = std::function<std::string(const GatheredOutput& tokens, const DoneEvent& done)>;

// Follows the job to its end and answers with one JSON document, `body(tokens, done)`, or with
// the error in the route's shape.
boost::asio::awaitable<void> answer_once(JobFollower& follower, http::Exchange& exchange,
                                         telemetry::RequestRecord& record, Dialect dialect,
                                         AnswerBody body);

// The native route's answer: {"id","text","finish_reason","usage","timings"}, and "logprobs"
// (one entry per token, as in the token events) when the request asked for them.
std::string native_answer(const std::string& id, const GatheredOutput& tokens, const DoneEvent& done,
                          bool with_logprobs);

}  // namespace llmq
