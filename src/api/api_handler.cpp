#include "api/api_handler.h"

#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <cctype>
#include <nlohmann/json.hpp>
#include <random>

#include "api/answer.h"
#include "api/event_channel.h"
#include "api/job_follower.h"
#include "api/openai.h"
#include "api/prompt.h"
#include "api/route_rules.h"
#include "api/status_page.h"

namespace llmq {
namespace {

using boost::asio::awaitable;
using namespace boost::asio::experimental::awaitable_operators;
namespace bhttp = boost::beast::http;

// Routes that take no body (GET, HEAD, and every method on a route that only answers GET) may
// carry a small one, never a megabyte.
constexpr std::uint64_t kBodilessRouteBodyBytes = 4096;

}  // namespace

ApiHandler::ApiHandler(ServiceState& state, ApiOptions options)
    : state_(state), options_(std::move(options)), started_unix_(unix_seconds()) {}

awaitable<void> ApiHandler::handle(const http::Request& request, http::Exchange& exchange) {
  // Note for GCC 12: no temporary with a destructor may live inside a co_await expression
  // (it is destroyed twice); responses are built into named variables first.
  std::string_view target = request.target();
  target = target.substr(0, target.find('?'));
  const bool post = request.method() == bhttp::verb::post;
  const bool get = request.method() == bhttp::verb::get || request.method() == bhttp::verb::head;
  const std::optional<Dialect> inference = post ? inference_dialect(target) : std::nullopt;
  const bool options = request.method() == bhttp::verb::options;
  if (!options) {
    for (auto& [name, value] : options_.cors.for_request(request[bhttp::field::origin]))
      exchange.add_header(std::move(name), std::move(value));
  }
  if (options) {
    http::Response response = preflight(request, target, exchange.keep_alive());
    co_await exchange.reply(std::move(response));
  } else if (inference) {
    co_await submit(request, exchange, *inference);
  } else if (get && (target == "/v1/models" || target.starts_with("/v1/models/"))) {
    http::Response response = models(request, target, exchange);
    co_await exchange.reply(std::move(response));
  } else if (get && target == kStatusRoute) {
    http::Response response = status(request, exchange);
    co_await exchange.reply(std::move(response));
  } else {
    http::Response response = route_simple(request, target, exchange.keep_alive());
    co_await exchange.reply(std::move(response));
  }
  // Counted once the answer is out; a client that left before any status was sent is not.
  if (options_.metrics != nullptr && exchange.status() != 0) {
    options_.metrics->count_response(route_label(target), exchange.status());
  }
}

http::HeadVerdict ApiHandler::check_head(const http::RequestHead& head, std::string_view peer) {
  std::string_view target = head.target();
  target = target.substr(0, target.find('?'));
  const bool inference = head.method() == bhttp::verb::post && inference_dialect(target);
  if (!inference) return {.refusal = std::nullopt, .max_body_bytes = kBodilessRouteBodyBytes};
  if (options_.api_keys == nullptr || !options_.api_keys->enabled()) return {};
  const std::string client =
      options_.identity != nullptr ? options_.identity->of(peer, head["X-Forwarded-For"])
                                   : "ip:" + address_group(peer);
  auto who = authenticate(head, client);
  const auto* refusal = std::get_if<Refusal>(&who);
  if (refusal == nullptr) return {};
  // Refused on its headers: counted and documented like any refusal, answered without reading
  // the body (the connection closes after the answer).
  const Clock::time_point began = Clock::now();
  telemetry::RequestRecord record;
  record.at = std::chrono::system_clock::now();
  const Dialect dialect = dialect_of(target);
  record.route = route_of(dialect);
  record.request_id = new_request_id();
  const ApiError err{refusal->status, refusal->code, refusal->message, {}};
  record.rejection_reason = rejection_reason(err);
  count_rejection(rejection_reason(err));
  http::Response response = refusal_response(dialect, err, refusal->retry_after_s, false);
  response.set("X-Request-Id", record.request_id);
  for (const auto& [name, value] : options_.cors.for_request(head[bhttp::field::origin]))
    response.insert(name, value);
  if (options_.metrics != nullptr) options_.metrics->count_response(route_label(target), refusal->status);
  record_refusal(record, began, refusal->status);
  return {.refusal = std::move(response)};
}

void ApiHandler::count_rejection(const char* reason) const {
  if (options_.metrics != nullptr) options_.metrics->count_rejection(reason);
}

std::string ApiHandler::client_of(const http::Request& request,
                                  const http::Exchange& exchange) const {
  if (options_.identity == nullptr) return "ip:" + address_group(exchange.remote_address());
  return options_.identity->of(exchange.remote_address(), request["X-Forwarded-For"]);
}

std::variant<const ApiKey*, Refusal> ApiHandler::authenticate(const http::RequestHead& request,
                                                              const std::string& client) const {
  if (options_.api_keys == nullptr || !options_.api_keys->enabled()) return nullptr;
  if (options_.auth_throttle != nullptr) {
    if (const auto wait = options_.auth_throttle->blocked(client)) {
      return Refusal{429, "too_many_auth_failures",
                     "too many requests with a missing or wrong API key from this client; "
                     "retry later",
                     *wait};
    }
  }
  const std::string_view presented =
      presented_key(request[bhttp::field::authorization], request["X-API-Key"]);
  const ApiKey* key = presented.empty() ? nullptr : options_.api_keys->match(presented);
  if (key != nullptr) return key;
  if (options_.auth_throttle != nullptr) options_.auth_throttle->failed(client);
  return Refusal{401, "unauthorized",
                 presented.empty() ? "an API key is required (Authorization: Bearer <key>)"
                                   : "the API key is not valid",
                 0};
}

std::variant<Admission::Ticket, Refusal> ApiHandler::admit_client(
    const http::Request& request, const http::Exchange& exchange,
    telemetry::RequestRecord& record) const {
  std::string client = client_of(request, exchange);
  std::optional<ClientLimits> limits;
  auto who = authenticate(request, client);
  if (auto* refusal = std::get_if<Refusal>(&who)) return std::move(*refusal);
  if (const ApiKey* key = std::get<const ApiKey*>(who)) {
    client = "key:" + key->name;
    limits = key->limits;
    record.api_key = key->name;
  }
  if (options_.admission == nullptr) return Admission::Ticket{};
  return options_.admission->admit_client(client, limits);
}

std::variant<ApiHandler::Admitted, http::Response> ApiHandler::admit(
    const http::Request& request, Dialect dialect, std::shared_ptr<JobSink> sink,
    const http::Exchange& exchange, telemetry::RequestRecord& record) const {
  const bool keep_alive = exchange.keep_alive();
  // retry_after_s 0: no Retry-After header.
  const auto refuse = [&](const ApiError& err, std::int64_t retry_after_s = 0) {
    record.rejection_reason = rejection_reason(err);
    count_rejection(rejection_reason(err));
    return refusal_response(dialect, err, retry_after_s, keep_alive);
  };
  const auto refuse_as = [&](const Refusal& r) {
    return refuse({r.status, r.code, r.message, {}}, r.retry_after_s);
  };
  auto client = admit_client(request, exchange, record);
  if (auto* refusal = std::get_if<Refusal>(&client)) return refuse_as(*refusal);
  if (!is_json_content_type(request[bhttp::field::content_type])) {
    return refuse({415, "unsupported_media_type", "Content-Type must be application/json", {}});
  }
  if (state_.draining.load()) {
    return refuse({503, "shutting_down", "the server is shutting down", {}}, 5);
  }
  if (state_.models.load() == nullptr) return refuse({503, "not_ready", "the model is still loading", {}}, 1);

  Admission::Ticket ticket = std::move(std::get<Admission::Ticket>(client));

  const std::string_view key = request["Idempotency-Key"];
  if (key.empty() || options_.idempotency == nullptr) {
    auto queued = queue_job(request, dialect, std::move(sink), refuse, record, ticket);
    if (auto* response = std::get_if<http::Response>(&queued)) return std::move(*response);
    return Admitted{std::get<JobPtr>(queued), std::move(ticket), nullptr, false};
  }
  if (!valid_idempotency_key(key)) {
    return refuse({400, "invalid_header", "Idempotency-Key must be 1-255 printable ASCII characters",
                   "Idempotency-Key"}, 0);
  }
  const std::string scope =
      record.api_key.empty() ? client_of(request, exchange) : "key:" + record.api_key;
  std::optional<http::Response> refused;
  std::shared_ptr<Fanout> created;
  auto outcome = options_.idempotency->submit(
      // The route is part of what a key names: the same body means another answer elsewhere.
      scope, std::string(key), request_digest(route_of(dialect), request.body()),
      [&](std::shared_ptr<Fanout> fanout) -> JobPtr {
        fanout->attach(sink);
        auto queued = queue_job(request, dialect, fanout, refuse, record, ticket);
        if (auto* response = std::get_if<http::Response>(&queued)) {
          refused = std::move(*response);
          return nullptr;
        }
        created = std::move(fanout);
        return std::get<JobPtr>(queued);
      });
  if (std::holds_alternative<IdempotencyStore::BodyMismatch>(outcome)) {
    return refuse({422, "idempotency_key_reused",
                   "this Idempotency-Key was used with a different request body", "Idempotency-Key"}, 0);
  }
  if (auto* attached = std::get_if<IdempotencyStore::Attached>(&outcome)) {
    attached->fanout->attach(sink);
    return Admitted{attached->job, std::move(ticket), attached->fanout, true};
  }
  if (refused) return std::move(*refused);
  return Admitted{std::get<JobPtr>(outcome), std::move(ticket), std::move(created), false};
}

std::variant<JobPtr, http::Response> ApiHandler::queue_job(
    const http::Request& request, Dialect dialect, std::shared_ptr<JobSink> sink,
    const std::function<http::Response(const ApiError&, std::int64_t)>& refuse,
    telemetry::RequestRecord& record, Admission::Ticket& ticket) const {
  const ModelCatalog* models = state_.models.load();
  ParseResult parsed = parse_request(request.body(), options_.parse_limits, dialect);
  if (auto* err = std::get_if<ApiError>(&parsed)) return refuse(*err, 0);
  PromptResult prompt = validate_for_model(std::move(std::get<ParsedRequest>(parsed)), *models);
  if (auto* err = std::get_if<ApiError>(&prompt)) return refuse(*err, 0);
  ValidatedRequest validated = std::move(std::get<ValidatedRequest>(prompt));
  record.model = validated.model;
  record.user = validated.params.user;
  if (options_.admission != nullptr && validated.params.n > 1) {
    if (auto refusal = options_.admission->add_jobs(ticket, validated.params.n - 1))
      return refuse({refusal->status, refusal->code, refusal->message, {}}, refusal->retry_after_s);
  }

  const std::int64_t timeout_ms = validated.params.timeout_ms.value_or(options_.default_timeout_ms);
  std::optional<Clock::time_point> deadline;
  if (timeout_ms > 0) deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (options_.admission != nullptr && timeout_ms > 0) {
    const auto refusal = options_.admission->check_wait(state_.queue.depth(),
                                                        std::chrono::milliseconds(timeout_ms));
    if (refusal) return refuse({refusal->status, refusal->code, refusal->message, {}}, refusal->retry_after_s);
  }
  // The seed is fixed here, at admission: a job that runs again (a worker that died under it)
  // then samples the same tokens, and what its client already has stays true.
  if (!validated.params.sampling.seed) {
    thread_local std::mt19937 seeds{std::random_device{}()};
    validated.params.sampling.seed = static_cast<std::uint32_t>(seeds() % 0xFFFFFFFFu);  // not llama.cpp's "random"
  }
  auto job = std::make_shared<Job>(new_request_id(), std::move(validated), deadline, std::move(sink));

  switch (state_.queue.push(job)) {
    case PushResult::accepted:
      return job;
    case PushResult::full: {
      const std::int64_t retry =
          options_.admission == nullptr
              ? 1
              : options_.admission->queue_full_retry_after(state_.queue.depth(), state_.queue.capacity());
      return refuse({429, "queue_full", "the queue is full; retry later", {}}, retry);
    }
    case PushResult::unavailable:
      return refuse({503, "queue_unavailable", "the queue is not reachable right now; retry later", {}}, 1);
    case PushResult::closed:
      break;
  }
  return refuse({503, "shutting_down", "the server is shutting down", {}}, 5);
}

awaitable<void> ApiHandler::submit(const http::Request& request, http::Exchange& exchange,
                                   Dialect dialect) {
  const Clock::time_point began = Clock::now();
  telemetry::RequestRecord record;
  record.at = std::chrono::system_clock::now();
  record.route = route_of(dialect);
  auto channel = std::make_shared<EventChannel>(co_await boost::asio::this_coro::executor,
                                                options_.max_stream_buffer_bytes);
  std::variant<Admitted, http::Response> admitted =
      admit(request, dialect, channel, exchange, record);
  if (auto* refusal = std::get_if<http::Response>(&admitted)) {
    // A refusal has no job id; this one names its document for the client and the logs.
    record.request_id = new_request_id();
    refusal->set("X-Request-Id", record.request_id);
    co_await exchange.reply(std::move(*refusal));
    record_refusal(record, began, exchange.status());
    co_return;
  }
  Admitted& admission = std::get<Admitted>(admitted);
  const JobPtr job = admission.job;
  // A request attached to an earlier one's job has a document of its own.
  record.request_id = admission.attached ? new_request_id() : job->id();
  JobFollower follower(job, channel, state_.queue, options_.ping_interval);
  const ParsedRequest& params = job->request().params;
  openai::Completion completion(dialect, job->id(),
                                std::chrono::duration_cast<std::chrono::seconds>(
                                    record.at.time_since_epoch()).count(),
                                job->request().model, params.include_usage,
                                params.top_logprobs.has_value(), params.n);
  // Named awaitables: see the GCC 12 note in handle().
  AnswerBody body = [&](const GatheredOutput& output, const DoneEvent& done) {
    if (dialect == Dialect::openai_embedding) {
      return openai::embeddings_json(output.embeddings, job->request().model, done.usage,
                                     params.embed_base64);
    }
    return dialect == Dialect::native
               ? native_answer(job->id(), output, done, params.top_logprobs.has_value())
               : completion.whole(output, done);
  };
  awaitable<void> work =
      !params.stream ? answer_once(follower, exchange, record, dialect, std::move(body))
      : dialect == Dialect::native
          ? stream_events(follower, *channel, exchange, record, options_.metrics)
          : openai_stream(follower, *channel, exchange, record, completion, options_.metrics);
  // A streaming client may half-close after sending; its pings and tokens tell when it is
  // really gone. A non-streaming one is sent nothing before its answer, so its end of stream
  // counts as leaving (as Go's and nginx's HTTP servers take it).
  awaitable<void> gone = exchange.client_gone(params.stream);
  awaitable<void> overflow = channel->wait_overflow();
  auto race = std::move(work) || std::move(gone) || std::move(overflow);
  co_await std::move(race);
  if (follower.error_code() == "deadline_exceeded") count_rejection("deadline");
  // A shared job (Idempotency-Key) is cancelled only when its last client left.
  const bool last_client = admission.fanout == nullptr || admission.fanout->detach(channel.get());
  if (channel->overflowed()) {
    spdlog::warn("request {}: client {} reads too slowly ({} bytes unread, over {}): {}"
                 "connection closed",
                 job->id(), exchange.remote_address(), channel->overflow_bytes(),
                 options_.max_stream_buffer_bytes, last_client ? "job cancelled, " : "");
    if (last_client) follower.abandon();
    exchange.close_for(http::CloseReason::slow_reader);
    record.rejection_reason = "slow_reader";
  } else if (!follower.finished()) {
    if (last_client) {
      spdlog::debug("request {}: client left, job cancelled", job->id());
      follower.abandon();
    }
    record.rejection_reason = "client_gone";
  }
  // An admitted job that ended without `done` (client gone, deadline, shutdown) still held its
  // client that long: the slowest-requests table and the latency percentiles must see it.
  if (!record.total_ms)
    record.total_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - began).count();
  else if (options_.admission != nullptr && record.queue_ms && !record.finish_reason.empty())
    options_.admission->job_done(std::chrono::milliseconds(*record.total_ms - *record.queue_ms));
  record_request(record, began, exchange.status());
}

void ApiHandler::record_refusal(telemetry::RequestRecord& record, Clock::time_point began,
                                int status) const {
  if (options_.refusal_documents != nullptr) {
    const auto omitted = options_.refusal_documents->admit(record.rejection_reason);
    if (!omitted) return;  // counted in the metrics; the next document says so
    record.refusals_omitted = *omitted;
  }
  record_request(record, began, status);
}

void ApiHandler::record_request(telemetry::RequestRecord& record, Clock::time_point began,
                                int status) const {
  if (options_.status != nullptr) options_.status->observe(record);
  if (options_.documents == nullptr) return;
  record.duration = Clock::now() - began;
  record.status = status;
  record.success = record.rejection_reason.empty() && !record.finish_reason.empty() &&
                   record.finish_reason != "cancelled";
  try {
    options_.documents->submit(telemetry::requests_stream(options_.origin), record.request_id,
                               telemetry::request_document(record, options_.origin));
  } catch (const std::exception& e) {  // the answer is out already; a lost document is logged
    spdlog::error("request {}: document not kept: {}", record.request_id, e.what());
  }
}

}  // namespace llmq
