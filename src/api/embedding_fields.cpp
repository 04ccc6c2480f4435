#include "api/embedding_fields.h"

#include <string>

namespace llmq {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxUser = 256;

MaybeError add_input(const json& v, const std::string& field, ParsedRequest& req) {
  if (v.is_number() || v.is_array()) {
    return bad_field(field, "unsupported", "inputs given as token ids are not supported; send text");
  }
  std::string text;
  if (auto e = read_string(v, field, text)) return e;
  if (text.empty()) return bad_field(field, "out_of_range", field + " must not be empty");
  req.embed_inputs.push_back(std::move(text));
  return std::nullopt;
}

MaybeError parse_input(const json& body, ParsedRequest& req) {
  const json* input = find_field(body, "input");
  if (input == nullptr) return bad_field("input", "missing", "input is required");
  if (!input->is_array()) return add_input(*input, "input", req);
  if (input->empty()) return bad_field("input", "out_of_range", "input must not be empty");
  if (input->size() > static_cast<std::size_t>(kMaxEmbedInputs)) {
    return bad_field("input", "out_of_range",
                     "input may hold at most " + std::to_string(kMaxEmbedInputs) + " texts");
  }
  // One array of numbers is a single input given as tokens, as OpenAI reads it.
  if ((*input)[0].is_number()) return add_input(*input, "input", req);
  for (std::size_t i = 0; i < input->size(); ++i) {
    if (auto e = add_input((*input)[i], "input[" + std::to_string(i) + "]", req)) return e;
  }
  return std::nullopt;
}

}  // namespace

MaybeError parse_embedding_fields(const json& body, ParsedRequest& req) {
  if (auto e = parse_input(body, req)) return e;
  if (const json* v = find_field(body, "encoding_format")) {
    std::string format;
    if (auto e = read_string(*v, "encoding_format", format)) return e;
    if (format != "float" && format != "base64") {
      return bad_field("encoding_format", "out_of_range", "encoding_format must be \"float\" or \"base64\"");
    }
    req.embed_base64 = format == "base64";
  }
  if (const json* v = find_field(body, "dimensions")) {
    std::int64_t n = 0;
    if (auto e = read_integer(*v, "dimensions", 1, 1 << 20, n)) return e;
    req.dimensions = static_cast<std::int32_t>(n);
  }
  if (const json* v = find_field(body, "user")) {
    if (auto e = read_string(*v, "user", req.user)) return e;
    if (req.user.size() > kMaxUser) return bad_field("user", "out_of_range", "user must be at most 256 bytes");
  }
  return std::nullopt;
}

}  // namespace llmq
