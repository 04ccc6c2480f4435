#include "api/route_rules.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <random>

#include "api/answer.h"

namespace llmq {

namespace bhttp = boost::beast::http;

Dialect dialect_of(std::string_view target) {
  if (target == "/v1/chat/completions") return Dialect::openai_chat;
  if (target == "/v1/embeddings") return Dialect::openai_embedding;
  if (target == "/" || target == "/api" || target.starts_with("/api/") || target == "/healthz" ||
      target == "/readyz" || target == "/metrics")
    return Dialect::native;
  return Dialect::openai_completion;
}

std::optional<std::string_view> route_methods(std::string_view target, bool with_metrics) {
  constexpr std::string_view kPost = "POST, OPTIONS";
  constexpr std::string_view kGet = "GET, HEAD, OPTIONS";
  if (inference_dialect(target)) return kPost;
  if (target == "/healthz" || target == "/readyz" || target == "/v1/models" ||
      target.starts_with("/v1/models/") || (target == "/metrics" && with_metrics) ||
      target == "/" || target == "/api/v1/status")
    return kGet;
  return std::nullopt;
}

const char* route_of(Dialect dialect) {
  switch (dialect) {
    case Dialect::openai_chat: return "/v1/chat/completions";
    case Dialect::openai_completion: return "/v1/completions";
    case Dialect::openai_embedding: return "/v1/embeddings";
    case Dialect::native: break;
  }
  return "/api/v1/req";
}

std::optional<Dialect> inference_dialect(std::string_view target) {
  for (const Dialect d : {Dialect::native, Dialect::openai_chat, Dialect::openai_completion,
                          Dialect::openai_embedding}) {
    if (target == route_of(d)) return d;
  }
  return std::nullopt;
}

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

http::Response with_retry_after(http::Response res, int seconds) {
  res.set(bhttp::field::retry_after, std::to_string(seconds));
  return res;
}

// A refusal as sent: the route's error body, Retry-After when there is a wait to suggest
// (0: none), and the auth challenge on a 401.
http::Response refusal_response(Dialect dialect, const ApiError& err, std::int64_t retry_after_s,
                                bool keep_alive) {
  http::Response response = error_response(dialect, err, keep_alive);
  if (retry_after_s > 0) response = with_retry_after(std::move(response), static_cast<int>(retry_after_s));
  if (err.status == 401) response.set(bhttp::field::www_authenticate, "Bearer realm=\"llmq\"");
  return response;
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[24];
  std::snprintf(buf, sizeof buf, "req_%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

bool is_json_content_type(std::string_view value) {
  constexpr std::string_view kJson = "application/json";
  if (value.size() < kJson.size()) return false;
  for (std::size_t i = 0; i < kJson.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != kJson[i]) return false;
  }
  return value.size() == kJson.size() || value[kJson.size()] == ';' || value[kJson.size()] == ' ';
}

// The route label of llmq_requests_total: a known path, or "other" so that scanners probing
// random paths cannot grow the number of series.
std::string route_label(std::string_view target) {
  for (std::string_view known : {"/api/v1/req", "/healthz", "/readyz", "/metrics",
                                 "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                 "/v1/models", "/", "/api/v1/status"}) {
    if (target == known) return std::string(known);
  }
  if (target.starts_with("/v1/models/")) return "/v1/models";
  return "other";
}

// The reason label of llmq_requests_rejected_total for an admission refusal.
const char* rejection_reason(const ApiError& err) {
  switch (err.status) {
    case 400: return "invalid";
    case 404: return "not_found";
    case 413: return "too_large";
    case 415: return "unsupported_media_type";
    case 422: return "invalid";
    case 401: return "unauthorized";
    case 429:
      if (err.code == "too_many_auth_failures") return "auth_throttled";
      return err.code == "rate_limited" || err.code == "deadline" ? err.code.c_str() : "queue_full";
    default: break;
  }
  if (err.code == "not_ready" || err.code == "queue_unavailable") return err.code.c_str();
  return "shutting_down";
}

}  // namespace llmq
