// The Elasticsearch documents llmq writes: one per request (logs-llmq.requests-default) and a
// runtime snapshot every few seconds (metrics-llmq.runtime-default), with ECS field names where
// ECS has one and llmq.* otherwise (docs/observability.md lists them).
//
// Pure functions of plain structs, so the field layout is unit-tested without a server. Prompts
// and completions are never part of a document.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "telemetry/resource_use.h"

namespace llmq::telemetry {


// Where a document comes from; the same for every document of a process.
struct DocumentOrigin {
  std::string service;                   // service.name
  std::string host;                      // host.name
  std::string stream_namespace = "default";  // the data streams' namespace (type-dataset-namespace)
};

// logs-llmq.requests-<namespace> and metrics-llmq.runtime-<namespace>.
inline std::string requests_stream(const DocumentOrigin& origin) {
  return "logs-llmq.requests-" + origin.stream_namespace;
}
inline std::string runtime_stream(const DocumentOrigin& origin) {
  return "metrics-llmq.runtime-" + origin.stream_namespace;
}

// How one request ended, as the API handler saw it.
struct RequestRecord {
  std::string request_id;  // the job's id, or a fresh one for a refusal
  std::chrono::system_clock::time_point at;  // when the request arrived
  std::chrono::nanoseconds duration{0};      // arrival to final answer
  int status = 0;                            // HTTP status sent (0: client left before any)
  std::string route;
  std::string model;
  bool success = false;
  std::string finish_reason;     // of a completed job; empty otherwise
  std::string rejection_reason;  // refusals and early ends (queue_full, invalid, deadline…)
  std::string worker;            // empty: never reached a worker
  std::string api_key;           // the name of the API key it presented (never the key)
  std::string user;              // the OpenAI `user` the client named, if any
  int attempts = 0;
  std::optional<std::int64_t> queue_ms, ttft_ms, total_ms;
  std::optional<std::int64_t> prompt_tokens, generated_tokens, cached_tokens;
  std::optional<double> decode_tokens_per_s;
  std::uint64_t refusals_omitted = 0;  // refusals of its reason left out before it (RefusalDocuments)
};

nlohmann::json request_document(const RequestRecord& record, const DocumentOrigin& origin);

// One runtime reading; a value that could not be read is left out of the document.
struct RuntimeSnapshot {
  std::chrono::system_clock::time_point at;
  std::string worker;  // llmq.worker: the process decodes (serve, a worker); empty: a gateway
  // Counts are integers in the documents. A worker's snapshot has no queue depth, latency or
  // token rate: the gateways measure those for all workers.
  std::optional<std::int64_t> queue_depth;
  std::int64_t slots_busy = 0, slots_total = 0;
  std::optional<double> p50_ms, p95_ms, p99_ms;
  std::optional<double> tokens_per_s;
  ResourceUse resources;
};

nlohmann::json runtime_document(const RuntimeSnapshot& snapshot, const DocumentOrigin& origin);
// service/host/timestamp: a resent snapshot lands on the same _id instead of duplicating.
std::string runtime_document_id(const RuntimeSnapshot& snapshot, const DocumentOrigin& origin);

// "2026-11-27T11:02:21.123Z"
std::string iso8601_ms(std::chrono::system_clock::time_point at);

}  // namespace llmq::telemetry
