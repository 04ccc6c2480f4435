#include "http/api_error.h"

#include <utility>

#include <nlohmann/json.hpp>

namespace llmq {

std::string ApiError::to_json() const {
  // ordered_json keeps the contract's key order (code, message, field) instead of sorting.
  nlohmann::ordered_json error = nlohmann::ordered_json::object();
  error["code"] = code;
  error["message"] = message;
  if (field) error["field"] = *field;

  nlohmann::ordered_json body = nlohmann::ordered_json::object();
  body["error"] = std::move(error);
  // A field name may echo client bytes; replace bad UTF-8 rather than throw while reporting.
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

ApiError bad_field(std::string field, std::string code, std::string message) {
  return ApiError{400, std::move(code), std::move(message), std::move(field)};
}

}  // namespace llmq
