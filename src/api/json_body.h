// A request body as a JSON document, strictly: valid UTF-8, not empty, an object, no duplicate
// key (json::parse would silently keep the last), at most 64 levels deep (checked while parsing,
// so a hostile body is refused before it is built).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "http/api_error.h"

namespace llmq {

// Fills `doc`, or returns the 400 invalid_json refusal (naming a duplicate key in `field`).
std::optional<ApiError> parse_body(std::string_view body, nlohmann::json& doc);
ApiError invalid_json(std::string message, std::optional<std::string> field = std::nullopt);

}  // namespace llmq
