#include "api/probe_handler.h"

#include "http/api_error.h"
#include "http/request_reading.h"

namespace llmq {

namespace bhttp = boost::beast::http;

boost::asio::awaitable<void> ProbeHandler::handle(const http::Request& request,
                                                  http::Exchange& exchange) {
  // GCC 12: the response is a named variable before it is awaited (see ApiHandler::handle).
  http::Response response = answer(request);
  response.keep_alive(exchange.keep_alive());
  co_await exchange.reply(std::move(response));
}

http::HeadVerdict ProbeHandler::check_head(const http::RequestHead&, std::string_view) {
  return {.refusal = std::nullopt, .max_body_bytes = 4096};  // no route here takes a body
}

http::Response ProbeHandler::answer(const http::Request& request) const {
  std::string_view target = request.target();
  target = target.substr(0, target.find('?'));
  const bool get = request.method() == bhttp::verb::get || request.method() == bhttp::verb::head;
  const bool known = target == "/healthz" || target == "/readyz" || target == "/metrics";
  if (known && !get) {
    const ApiError err{405, "method_not_allowed",
                       std::string(request.method_string()) + " is not allowed on " + std::string(target), {}};
    return http::json_response(bhttp::status::method_not_allowed, err.to_json(), true);
  }
  if (target == "/healthz") return http::json_response(bhttp::status::ok, R"({"status":"ok"})", true);
  if (target == "/readyz") {
    const std::string state = ready_();
    if (state.empty()) return http::json_response(bhttp::status::ok, R"({"status":"ready"})", true);
    http::Response res = http::json_response(bhttp::status::service_unavailable,
                                             R"({"status":")" + state + R"("})", true);
    res.set(bhttp::field::retry_after, "1");
    return res;
  }
  if (target == "/metrics") {
    http::Response res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_type, telemetry::kExpositionContentType);
    res.set(bhttp::field::server, "llmq");
    res.body() = metrics_.expose();
    res.prepare_payload();
    return res;
  }
  const ApiError err{404, "not_found", "no route " + std::string(target), {}};
  return http::json_response(bhttp::status::not_found, err.to_json(), true);
}

}  // namespace llmq
