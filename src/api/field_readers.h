// Typed reads of request-body fields, each refusing a wrong type or range with the 400 that
// names the field (the contract's rules; see api/validation.h).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "http/api_error.h"

namespace llmq {

using MaybeError = std::optional<ApiError>;

// The value of an optional field, or nullptr when it is absent or null: OpenAI clients send
// null for "not set".
const nlohmann::json* find_field(const nlohmann::json& obj, const char* name);

MaybeError read_string(const nlohmann::json& v, const std::string& field, std::string& out);

// Booleans are a distinct JSON type, never numbers. A float with no fractional part (2.0, as
// Python clients may send) is accepted as that integer; 1.5 is invalid_type. Ranges are checked
// in the value's own type before any cast, so 2^64 or 1e30 are refused and never wrap.
MaybeError read_integer(const nlohmann::json& v, const std::string& field, std::int64_t min,
                        std::int64_t max, std::int64_t& out);

MaybeError read_number(const nlohmann::json& v, const std::string& field, const std::string& rule,
                       double& out);

MaybeError read_bool(const nlohmann::json& v, const std::string& field, bool& out);

}  // namespace llmq
