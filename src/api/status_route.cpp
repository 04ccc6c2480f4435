// ApiHandler's GET /api/v1/status: the live status (api/status.h), behind the API keys when
// there are keys, refused as /v1/models refuses (401 in the native error shape, with the
// Bearer challenge).
#include "api/answer.h"
#include "api/api_handler.h"
#include "api/route_rules.h"

namespace llmq {

namespace bhttp = boost::beast::http;

http::Response ApiHandler::status(const http::Request& request,
                                  const http::Exchange& exchange) const {
  const bool keep_alive = exchange.keep_alive();
  if (options_.status == nullptr) {
    count_rejection("not_found");
    return error_response(Dialect::native, {404, "not_found", "no route " + std::string(kStatusRoute), {}},
                          keep_alive);
  }
  auto who = authenticate(request, client_of(request, exchange));
  if (const auto* r = std::get_if<Refusal>(&who)) {
    count_rejection(r->status == 401 ? "unauthorized" : "auth_throttled");
    return refusal_response(Dialect::native, {r->status, r->code, r->message, {}},
                            r->retry_after_s, keep_alive);
  }
  const nlohmann::json body =
      options_.status->snapshot(state_.queue, state_.models.load(), state_.draining.load());
  http::Response res = http::json_response(
      bhttp::status::ok, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
      keep_alive);
  res.set(bhttp::field::cache_control, "no-store");
  return res;
}

}  // namespace llmq
