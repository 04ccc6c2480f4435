// What the routes of ApiHandler agree on: which dialect a path speaks, the labels of the
// metrics, how a refusal is answered, request ids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/api_error.h"
#include "http/server.h"
#include "queue/request.h"

namespace llmq {

// Which API's error shape a path answers in: the native routes (/api/…, the probes, /metrics)
// the contract's; every other path, /v1/… and unknown ones alike, OpenAI's (whose keys include
// the contract's `code` and `message`, so a native client reads it too).
Dialect dialect_of(std::string_view target);
// The methods a route answers (its Allow header), or nullopt for a path that is no route.
// `with_metrics`: whether /metrics is served.
std::optional<std::string_view> route_methods(std::string_view target, bool with_metrics);
// The path of a completion route.
const char* route_of(Dialect dialect);
// The dialect of an inference route (POST /api/v1/req, /v1/chat/completions, /v1/completions,
// /v1/embeddings: the routes that queue a job, read a body and need an API key), or nullopt.
std::optional<Dialect> inference_dialect(std::string_view target);
std::int64_t unix_seconds();
http::Response with_retry_after(http::Response res, int seconds);
// A refusal as sent: the route's error body, Retry-After when there is a wait to suggest
// (0: none), and the auth challenge on a 401.
http::Response refusal_response(Dialect dialect, const ApiError& err, std::int64_t retry_after_s,
                                bool keep_alive);
std::string new_request_id();
bool is_json_content_type(std::string_view value);
// The route label of llmq_requests_total: a known path, or "other" so that scanners probing
// random paths cannot grow the number of series.
std::string route_label(std::string_view target);
// The reason label of llmq_requests_rejected_total for an admission refusal.
const char* rejection_reason(const ApiError& err);

}  // namespace llmq
