#include "api/field_readers.h"

#include <cmath>

namespace llmq {

using json = nlohmann::json;

const json* find_field(const json& obj, const char* name) {
  const auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

MaybeError read_string(const json& v, const std::string& field, std::string& out) {
  if (!v.is_string()) return bad_field(field, "invalid_type", field + " must be a string");
  out = v.get<std::string>();
  return std::nullopt;
}

MaybeError read_integer(const json& v, const std::string& field, std::int64_t min,
                        std::int64_t max, std::int64_t& out) {
  const std::string rule = field + " must be an integer between " + std::to_string(min) +
                           " and " + std::to_string(max);
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (max < 0 || u > static_cast<std::uint64_t>(max)) {
      return bad_field(field, "out_of_range", rule);
    }
    out = static_cast<std::int64_t>(u);
  } else if (v.is_number_integer()) {
    out = v.get<std::int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) return bad_field(field, "invalid_type", rule);
    constexpr double kTwoPow63 = 9223372036854775808.0;
    if (d < -kTwoPow63 || d >= kTwoPow63) return bad_field(field, "out_of_range", rule);
    out = static_cast<std::int64_t>(d);
  } else {
    return bad_field(field, "invalid_type", rule);
  }
  if (out < min || out > max) return bad_field(field, "out_of_range", rule);
  return std::nullopt;
}

MaybeError read_number(const json& v, const std::string& field, const std::string& rule,
                       double& out) {
  if (!v.is_number()) return bad_field(field, "invalid_type", rule);
  out = v.get<double>();
  return std::nullopt;
}

MaybeError read_bool(const json& v, const std::string& field, bool& out) {
  if (!v.is_boolean()) return bad_field(field, "invalid_type", field + " must be true or false");
  out = v.get<bool>();
  return std::nullopt;
}

}  // namespace llmq
