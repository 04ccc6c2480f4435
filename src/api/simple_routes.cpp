// ApiHandler's routes that queue nothing: the probes, /metrics, GET /v1/models, and the 404 and
// 405 of paths and methods that are no route.
#include "api/api_handler.h"

#include "api/answer.h"
#include "api/openai.h"
#include "api/route_rules.h"

namespace llmq {

namespace bhttp = boost::beast::http;

http::Response ApiHandler::metrics(bool keep_alive) const {
  http::Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, telemetry::kExpositionContentType);
  res.set(bhttp::field::server, "llmq");
  res.keep_alive(keep_alive);
  res.body() = options_.metrics->expose();
  res.prepare_payload();
  return res;
}

http::Response ApiHandler::route_simple(const http::Request& request, std::string_view target,
                                        bool keep_alive) const {
  const bool get = request.method() == bhttp::verb::get || request.method() == bhttp::verb::head;
  if (target == "/healthz" && get) {
    return http::json_response(bhttp::status::ok, R"({"status":"ok"})", keep_alive);
  }
  if (target == "/readyz" && get) return readiness(keep_alive);
  const bool has_metrics = options_.metrics != nullptr;
  if (target == "/metrics" && get && has_metrics) return metrics(keep_alive);
  const Dialect dialect = dialect_of(target);
  if (target == "/healthz" || target == "/readyz" || target == "/api/v1/req" ||
      target == "/v1/chat/completions" || target == "/v1/completions" || target == "/v1/models" ||
      target.starts_with("/v1/models/") || (target == "/metrics" && has_metrics)) {
    return error_response(dialect,
                          {405, "method_not_allowed",
                           std::string(request.method_string()) + " is not allowed on " +
                               std::string(target),
                           {}},
                          keep_alive);
  }
  count_rejection("not_found");
  return error_response(dialect, {404, "not_found", "no route " + std::string(target), {}},
                        keep_alive);
}

http::Response ApiHandler::models(const http::Request& request, std::string_view target,
                                  const http::Exchange& exchange) const {
  const bool keep_alive = exchange.keep_alive();
  const auto refuse = [&](const ApiError& err, std::int64_t retry_after_s) {
    return refusal_response(Dialect::openai_completion, err, retry_after_s, keep_alive);
  };
  if (auto refusal = authenticate(request, client_of(request, exchange));
      std::holds_alternative<Refusal>(refusal)) {
    const Refusal& r = std::get<Refusal>(refusal);
    count_rejection(r.status == 401 ? "unauthorized" : "auth_throttled");
    return refuse({r.status, r.code, r.message, {}}, r.retry_after_s);
  }
  const ModelCatalog* catalog = state_.models.load();
  if (catalog == nullptr) return refuse({503, "not_ready", "the model is still loading", {}}, 1);
  if (target == "/v1/models") {
    return http::json_response(bhttp::status::ok, openai::model_list_json(*catalog, started_unix_),
                               keep_alive);
  }
  const std::string_view id = target.substr(std::string_view("/v1/models/").size());
  const ServedModel* model = catalog->find(id);
  if (model == nullptr) {
    return refuse({404, "model_not_found", "model '" + std::string(id) + "' is not served here",
                   std::string("model")},
                  0);
  }
  return http::json_response(bhttp::status::ok, openai::model_json(*catalog, *model, started_unix_),
                             keep_alive);
}

http::Response ApiHandler::readiness(bool keep_alive) const {
  if (state_.draining.load()) {
    return with_retry_after(
        http::json_response(bhttp::status::service_unavailable, R"({"status":"draining"})",
                            keep_alive), 5);
  }
  if (state_.models.load() == nullptr) {
    return with_retry_after(
        http::json_response(bhttp::status::service_unavailable, R"({"status":"loading"})",
                            keep_alive), 1);
  }
  return http::json_response(bhttp::status::ok, R"({"status":"ready"})", keep_alive);
}

}  // namespace llmq
