// ApiHandler's routes that queue nothing: the probes, /metrics, GET /v1/models, and the 404 and
// 405 of paths and methods that are no route.
#include "api/api_handler.h"

#include "api/answer.h"
#include "api/openai.h"
#include "api/route_rules.h"
#include "api/status_page.h"

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
  if (target == "/" && get) return status_page_response(keep_alive);
  const bool has_metrics = options_.metrics != nullptr;
  if (target == "/metrics" && get && has_metrics) return metrics(keep_alive);
  const Dialect dialect = dialect_of(target);
  if (const auto methods = route_methods(target, has_metrics)) {
    http::Response response = error_response(
        dialect,
        {405, "method_not_allowed",
         std::string(request.method_string()) + " is not allowed on " + std::string(target), {}},
        keep_alive);
    response.set(bhttp::field::allow, *methods);
    return response;
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
  return http::json_response(bhttp::status::ok, openai::model_json(*catalog, id, *model, started_unix_),
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

http::Response ApiHandler::preflight(const http::Request& request, std::string_view target,
                                     bool keep_alive) const {
  const Dialect dialect = dialect_of(target);
  const auto methods = route_methods(target, options_.metrics != nullptr);
  if (!methods) {
    count_rejection("not_found");
    return error_response(dialect, {404, "not_found", "no route " + std::string(target), {}},
                          keep_alive);
  }
  const std::string_view origin = request[bhttp::field::origin];
  const std::string_view method = request[bhttp::field::access_control_request_method];
  HeaderList cors;
  if (!origin.empty() && !method.empty()) {  // a browser asks before a cross-origin request
    auto allowed = options_.cors.for_preflight(origin, *methods, method,
                                               request[bhttp::field::access_control_request_headers]);
    if (!allowed) {
      count_rejection("cors_not_allowed");
      http::Response refusal = error_response(
          dialect,
          {403, "cors_not_allowed",
           options_.cors.enabled()
               ? "origin " + std::string(origin) + " may not send " + std::string(method) + " to " +
                     std::string(target) + " (see --cors-origins)"
               : std::string("cross-origin requests are off (--cors-origins allows origins)"),
           {}},
          keep_alive);
      refusal.set(bhttp::field::allow, *methods);
      // Nothing that allows anything: only what keeps caches from mixing up origins.
      for (const auto& [name, value] : options_.cors.for_request(origin))
        if (name == "Vary") refusal.insert(name, value);
      return refusal;
    }
    cors = std::move(*allowed);
  }
  http::Response response{bhttp::status::no_content, 11};
  response.set(bhttp::field::server, "llmq");
  response.set(bhttp::field::allow, *methods);
  for (const auto& [name, value] : cors) response.insert(name, value);
  response.keep_alive(keep_alive);
  return response;
}

http::Response ApiHandler::unread_refusal(const ApiError& err, const http::RequestHead* head) {
  std::string_view target = "/";  // unread: the contract's shape
  if (head != nullptr) target = head->target();
  target = target.substr(0, target.find('?'));
  http::Response response = error_response(dialect_of(target), err, false);
  if (head != nullptr) {
    for (const auto& [name, value] : options_.cors.for_request((*head)[bhttp::field::origin]))
      response.insert(name, value);
  }
  return response;
}

}  // namespace llmq
