#include "telemetry/request_document.h"

#include <cstdio>
#include <ctime>

namespace llmq::telemetry {
namespace {

template <class T>
void put_if(nlohmann::json& object, const char* key, const std::optional<T>& value) {
  if (value) object[key] = *value;
}

void put_if(nlohmann::json& object, const char* key, const std::string& value) {
  if (!value.empty()) object[key] = value;
}

nlohmann::json origin_fields(std::chrono::system_clock::time_point at,
                             const DocumentOrigin& origin) {
  return {{"@timestamp", iso8601_ms(at)},
          {"service", {{"name", origin.service}}},
          {"host", {{"name", origin.host}}}};
}

}  // namespace

std::string iso8601_ms(std::chrono::system_clock::time_point at) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(at.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(floor<std::chrono::seconds>(ms).count());
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[96];  // room for any int fields: -Wformat-truncation cannot see the ranges
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms.count() % 1000));
  return buf;
}

nlohmann::json request_document(const RequestRecord& r, const DocumentOrigin& origin) {
  nlohmann::json doc = origin_fields(r.at, origin);
  doc["event"] = {{"outcome", r.success ? "success" : "failure"},
                  {"duration", r.duration.count()}};
  if (r.status != 0) doc["http"] = {{"response", {{"status_code", r.status}}}};
  nlohmann::json llmq = {{"request_id", r.request_id}, {"attempts", r.attempts}};
  put_if(llmq, "route", r.route);
  put_if(llmq, "model", r.model);
  put_if(llmq, "worker", r.worker);
  put_if(llmq, "api_key", r.api_key);
  put_if(llmq, "user", r.user);
  put_if(llmq, "finish_reason", r.finish_reason);
  put_if(llmq, "rejection_reason", r.rejection_reason);
  put_if(llmq, "queue_ms", r.queue_ms);
  put_if(llmq, "ttft_ms", r.ttft_ms);
  put_if(llmq, "total_ms", r.total_ms);
  put_if(llmq, "decode_tokens_per_s", r.decode_tokens_per_s);
  if (r.refusals_omitted > 0) llmq["refusals_omitted"] = r.refusals_omitted;
  nlohmann::json tokens = nlohmann::json::object();
  put_if(tokens, "prompt", r.prompt_tokens);
  put_if(tokens, "generated", r.generated_tokens);
  put_if(tokens, "cached", r.cached_tokens);
  if (!tokens.empty()) llmq["tokens"] = std::move(tokens);
  doc["llmq"] = std::move(llmq);
  return doc;
}

nlohmann::json runtime_document(const RuntimeSnapshot& s, const DocumentOrigin& origin) {
  nlohmann::json doc = origin_fields(s.at, origin);
  nlohmann::json latency = nlohmann::json::object();
  put_if(latency, "p50_ms", s.p50_ms);
  put_if(latency, "p95_ms", s.p95_ms);
  put_if(latency, "p99_ms", s.p99_ms);
  doc["llmq"] = {{"slots", {{"busy", s.slots_busy}, {"total", s.slots_total}}},
                 {"latency", std::move(latency)}};
  if (!s.worker.empty()) doc["llmq"]["worker"] = s.worker;
  if (s.queue_depth) doc["llmq"]["queue"] = {{"depth", *s.queue_depth}};
  put_if(doc["llmq"], "tokens_per_s", s.tokens_per_s);
  nlohmann::json process = {{"cpu", nlohmann::json::object()}, {"memory", nlohmann::json::object()}};
  put_if(process["cpu"], "pct", s.resources.process_cpu_pct);
  put_if(process["memory"], "rss_bytes", s.resources.process_rss_bytes);
  nlohmann::json host = {{"cpu", nlohmann::json::object()}, {"memory", nlohmann::json::object()}};
  put_if(host["cpu"], "pct", s.resources.host_cpu_pct);
  put_if(host["memory"], "used_bytes", s.resources.host_memory_used_bytes);
  doc["process"] = std::move(process);
  doc["host"].update(host);  // next to host.name
  return doc;
}

std::string runtime_document_id(const RuntimeSnapshot& s, const DocumentOrigin& origin) {
  return origin.service + "/" + origin.host + "/" + iso8601_ms(s.at);
}

}  // namespace llmq::telemetry
