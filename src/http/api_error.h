// A refusal at the API edge: the HTTP status and the JSON error body of the contract,
// {"error":{"code","message","field"}}.
#pragma once

#include <optional>
#include <string>

namespace llmq {

struct ApiError {
  int status = 400;                  // HTTP status code
  std::string code;                  // machine-readable, e.g. "invalid_type", "out_of_range"
  std::string message;               // one sentence for a human
  std::optional<std::string> field;  // the request field at fault, when there is one

  std::string to_json() const;
};

// Common refusals.
ApiError bad_field(std::string field, std::string code, std::string message);

}  // namespace llmq
