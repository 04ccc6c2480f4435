// ApiHandler: llmq's routes. It admits requests into the queue and follows each job to its end,
// streaming (SSE) or answering once (JSON).
//
// Routes: POST /api/v1/req, GET /healthz, GET /readyz, GET /metrics, the live page GET / and its
// GET /api/v1/status (api/status_page.h, api/status.h), and the OpenAI-compatible
// POST /v1/chat/completions, POST /v1/completions, GET /v1/models[/{id}] (api/openai.h). Every
// route answers OPTIONS (its Allow list, or a CORS preflight: api/cors.h). Everything else is a
// JSON 404 (or 405, with Allow, for a known path with the wrong method).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string_view>
#include <variant>

#include "api/admission.h"
#include "telemetry/refusal_documents.h"
#include "api/auth_throttle.h"
#include "api/client_identity.h"
#include "api/cors.h"
#include "api/api_keys.h"
#include "api/idempotency.h"
#include "api/status.h"
#include "api/validation.h"
#include "engine/model_catalog.h"
#include "http/server.h"
#include "queue/job_queue.h"
#include "telemetry/event_sink.h"
#include "telemetry/request_document.h"
#include "telemetry/service_metrics.h"

namespace llmq {

struct ApiOptions {
  std::chrono::milliseconds ping_interval{1000};  // SSE ping period
  std::int64_t default_timeout_ms = 600000;       // deadline when a request sets none; 0: none
  ParseLimits parse_limits;                       // request parsing defaults
  telemetry::ServiceMetrics* metrics = nullptr;   // counts responses, serves /metrics; may be null
  telemetry::EventSink* documents = nullptr;      // one document per POST /api/v1/req; may be null
  telemetry::DocumentOrigin origin;               // service.name and host.name of those documents
  std::size_t max_stream_buffer_bytes = 1 << 20;  // unread bytes of one stream before it is cut
  Admission* admission = nullptr;                 // client limits, predicted wait; may be null
  const ApiKeys* api_keys = nullptr;              // who may submit; null or empty: anyone
  IdempotencyStore* idempotency = nullptr;        // Idempotency-Key support; null: ignored
  const ClientIdentity* identity = nullptr;       // who a keyless client is; null: its address
  AuthThrottle* auth_throttle = nullptr;          // repeated 401s → 429; null: no throttle
  telemetry::RefusalDocuments* refusal_documents = nullptr;  // which refusals get a document;
                                                             // null: every one
  CorsPolicy cors = {};                           // which web origins may call; default: none
  ServiceStatus* status = nullptr;  // GET /api/v1/status, and what it learns of each request;
                                    // null: that route is a 404
};

// What the handler shares with the process that runs it.
struct ServiceState {
  explicit ServiceState(JobProducer& q) : queue(q) {}
  JobProducer& queue;                             // LLM_INFERENCE
  std::atomic<const ModelCatalog*> models{nullptr};  // set once the service can run jobs: ready
  std::atomic<bool> draining{false};           // shutting down: refuse new work
};

class ApiHandler final : public http::Handler {
 public:
  ApiHandler(ServiceState& state, ApiOptions options);

  boost::asio::awaitable<void> handle(const http::Request& request,
                                      http::Exchange& exchange) override;
  // Before a body is read: the API key of a request to an inference route (a refusal costs no
  // body), and a small body limit for every route that takes none.
  http::HeadVerdict check_head(const http::RequestHead& head, std::string_view peer) override;
  // The server's own refusals (431, 413, 400 bad_http) in the error shape of the route, with
  // the CORS headers of the request's origin.
  http::Response unread_refusal(const ApiError& err, const http::RequestHead* head) override;

 private:
  // The completion routes: /api/v1/req, and OpenAI's two (`dialect` says which).
  boost::asio::awaitable<void> submit(const http::Request& request, http::Exchange& exchange,
                                      Dialect dialect);
  // A queued job, and the client's ticket that stays held until the request ends.
  struct Admitted {
    JobPtr job;
    Admission::Ticket ticket;
    std::shared_ptr<Fanout> fanout;  // set when the job may be shared (Idempotency-Key)
    bool attached = false;           // joined a job an earlier request started
  };
  // Checks the request and queues its job, or says why not (the refusal response). `record`
  // gets the refusal reason, or the model of an admitted job.
  std::variant<Admitted, http::Response> admit(const http::Request& request, Dialect dialect,
                                               std::shared_ptr<JobSink> sink,
                                               const http::Exchange& exchange,
                                               telemetry::RequestRecord& record) const;
  // The API key the request presents: null when no keys are configured, the 401 refusal when
  // keys are required and it has none that matches, or a 429 for a `client` that failed too
  // often lately (AuthThrottle).
  std::variant<const ApiKey*, Refusal> authenticate(const http::RequestHead& request,
                                                    const std::string& client) const;
  // The client behind the request when it presents no key: "ip:<address group>".
  std::string client_of(const http::Request& request, const http::Exchange& exchange) const;
  // Who the client is for its limits, or the 401 when keys are required and it has none, or
  // its limits' refusal.
  std::variant<Admission::Ticket, Refusal> admit_client(const http::Request& request,
                                                          const http::Exchange& exchange,
                                                          telemetry::RequestRecord& record) const;
  // Validates the body and queues a new job with `sink` (or says why not). A job of n choices
  // holds n of its client's jobs on `ticket`.
  std::variant<JobPtr, http::Response> queue_job(const http::Request& request, Dialect dialect,
                                                 std::shared_ptr<JobSink> sink,
                                                 const std::function<http::Response(const ApiError&, std::int64_t)>& refuse,
                                                 telemetry::RequestRecord& record,
                                                 Admission::Ticket& ticket) const;
  // Ships the request's document once its outcome is final (never blocks: see EventSink).
  void record_request(telemetry::RequestRecord& record, Clock::time_point began, int status) const;
  // The same for a refusal, which the per-reason document rate may leave out.
  void record_refusal(telemetry::RequestRecord& record, Clock::time_point began, int status) const;
  http::Response route_simple(const http::Request& request, std::string_view target,
                              bool keep_alive) const;
  // OPTIONS: a browser's CORS preflight (allowed, or 403 cors_not_allowed), else the route's
  // Allow list; 404 for a path that is no route.
  http::Response preflight(const http::Request& request, std::string_view target,
                           bool keep_alive) const;
  http::Response readiness(bool keep_alive) const;
  // GET /v1/models and /v1/models/{id} (behind the API keys, when there are keys).
  http::Response models(const http::Request& request, std::string_view target,
                        const http::Exchange& exchange) const;
  http::Response metrics(bool keep_alive) const;
  // GET /api/v1/status (behind the API keys, when there are keys); api/status_route.cpp.
  http::Response status(const http::Request& request, const http::Exchange& exchange) const;
  void count_rejection(const char* reason) const;

  ServiceState& state_;
  const ApiOptions options_;
  const std::int64_t started_unix_;  // the `created` of the served model (unix seconds)
};

}  // namespace llmq
