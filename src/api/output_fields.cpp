#include "api/output_fields.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <string_view>
#include <optional>

namespace llmq {
namespace {

using json = nlohmann::json;

// Where the literal that starts at text[i] (a GBNF string "…", character class […] or comment
// #… to the end of the line) ends; `i` itself when nothing starts there.
std::size_t skip_gbnf_literal(std::string_view text, std::size_t i) {
  const char open = text[i];
  if (open == '#') {
    const std::size_t eol = text.find('\n', i);
    return eol == std::string_view::npos ? text.size() : eol;
  }
  if (open != '"' && open != '[') return i;
  const char close = open == '"' ? '"' : ']';
  for (std::size_t j = i + 1; j < text.size(); ++j) {
    if (text[j] == '\\') {
      ++j;
    } else if (text[j] == close) {
      return j;
    }
  }
  return text.size();
}

// The largest count in the repetitions `{m}`, `{m,}`, `{,n}` and `{m,n}` of a regex or (with
// `gbnf`, outside its literals) a GBNF text; a count too long to read counts as above any limit.
std::int64_t largest_repetition(std::string_view text, bool gbnf) {
  std::int64_t largest = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (gbnf) i = skip_gbnf_literal(text, i);
    if (i >= text.size() || text[i] != '{' || (i > 0 && text[i - 1] == '\\')) continue;
    std::int64_t count = 0;
    std::int64_t in_braces = 0;  // the largest count between these braces
    bool any_digit = false;
    std::size_t j = i + 1;
    for (; j < text.size(); ++j) {
      const char c = text[j];
      if (c == ',') {
        count = 0;
      } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
        any_digit = true;
        count = count > kMaxRepetition ? count : count * 10 + (c - '0');
        in_braces = std::max(in_braces, count);
      } else {
        break;
      }
    }
    if (any_digit && j < text.size() && text[j] == '}') largest = std::max(largest, in_braces);
  }
  return largest;
}

ApiError too_repetitive(const std::string& field, const std::string& what, std::int64_t count) {
  return bad_field(field, "out_of_range",
                   field + ": " + what + " asks for " + std::to_string(count) +
                       " repetitions; at most " + std::to_string(kMaxRepetition) + " are supported");
}

// Escapes the converter takes, outside and inside [...], besides \d \w \s (which
// converter_pattern spells out as classes).
constexpr std::string_view kEscapes = "^$.[]()|{}*+?trn\\\"xuU";
constexpr std::string_view kClassEscapes = "trn\\\"[]xuU";
constexpr std::string_view kShorthands = "dws";

// Why llama.cpp's converter could not enforce a `pattern` (it would accept any string instead),
// or nullopt. Its regex subset: groups plain or (?:…), the escapes above, anchors only at the
// ends, repetitions {m}, {m,}, {m,n}.
std::optional<std::string> pattern_problem(std::string_view p) {
  bool in_class = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      const char next = i + 1 < p.size() ? p[i + 1] : '\0';
      const std::string_view allowed = in_class ? kClassEscapes : kEscapes;
      if (next == '\0' || (allowed.find(next) == std::string_view::npos &&
                           kShorthands.find(next) == std::string_view::npos)) {
        return std::string("the escape \\") + next + (in_class ? " inside [...]" : "") +
               " is not supported";
      }
      ++i;
    } else if (in_class) {
      in_class = c != ']';
    } else if (c == '[') {
      in_class = true;
    } else if (c == '(' && i + 1 < p.size() && p[i + 1] == '?' && (i + 2 >= p.size() || p[i + 2] != ':')) {
      return std::string("lookarounds, named groups and inline flags (?…) are not supported");
    } else if ((c == '^' && i != 0) || (c == '$' && i + 1 != p.size())) {
      return std::string("anchors inside the pattern are not supported");
    }
  }
  if (in_class) return std::string("a character class is not closed");
  return std::nullopt;
}

// \d, \w and \s as the characters they stand for (\s: a space, the only white space a JSON
// string holds unescaped), inside a class or as one.
std::string shorthand(char name, bool in_class) {
  const std::string_view chars = name == 'd' ? "0-9" : name == 'w' ? "a-zA-Z0-9_" : " ";
  return in_class ? std::string(chars) : "[" + std::string(chars) + "]";
}

// A character a JSON string may hold unescaped: not a quote, backslash or control character.
// The converter puts a pattern's characters in the string as they are, so a `.` that let `"`
// through would end the string early and break the document.
constexpr std::string_view kJsonChar = "[^\"\\\\\\x00-\\x1F]";

// The pattern the converter gets: bare dots made JSON-safe, \d \w \s spelled out, and anchored, since JSON Schema's
// patterns match anywhere in the string unless anchored and the converter takes only anchored
// ones: a free end becomes a run of JSON-safe characters, at most `max_length` long when the
// schema gives one (the converter enforces no length beside a pattern, so this keeps the string
// finite).
std::string converter_pattern(std::string_view p, std::optional<std::int64_t> max_length) {
  std::string body;
  bool in_class = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const bool is_shorthand = kShorthands.find(p[i + 1]) != std::string_view::npos;
      body += is_shorthand ? shorthand(p[i + 1], in_class) : std::string(p.substr(i, 2));
      ++i;
      continue;
    }
    if (in_class) {
      in_class = c != ']';
    } else if (c == '[') {
      in_class = true;
    } else if (c == '.') {
      body += kJsonChar;
      continue;
    }
    body += c;
  }
  const bool starts = !body.empty() && body.front() == '^';
  std::size_t backslashes = 0;
  while (backslashes + 1 < body.size() && body[body.size() - 2 - backslashes] == '\\') ++backslashes;
  const bool ends = body.size() > (starts ? 1U : 0U) && body.back() == '$' && backslashes % 2 == 0;
  if (starts && ends) return body;
  std::string_view core(body);
  if (starts) core.remove_prefix(1);
  if (ends) core.remove_suffix(1);
  const std::string free_run =
      std::string(kJsonChar) + (max_length ? "{0," + std::to_string(*max_length) + "}" : "*");
  return "^" + (starts ? std::string() : free_run) + "(?:" + std::string(core) + ")" +
         (ends ? std::string() : free_run) + "$";
}

// Checks what the converter cannot be trusted with, wherever it is in the schema, and anchors
// its patterns. Every count a schema asks to repeat becomes that many grammar rules: bounded.
// Values that are data, not schema (const, enum, default, examples), are left alone.
MaybeError prepare_schema(json& v, const std::string& field, const std::string& path) {
  static constexpr std::array<const char*, 8> kCounts = {
      "minItems", "maxItems", "minLength", "maxLength",
      "minProperties", "maxProperties", "minContains", "maxContains"};
  static constexpr std::array<const char*, 4> kData = {"const", "enum", "default", "examples"};
  const auto at = [&path] { return path.empty() ? std::string("/") : path; };
  if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (auto e = prepare_schema(v[i], field, path + "/" + std::to_string(i))) return e;
    }
    return std::nullopt;
  }
  if (!v.is_object()) return std::nullopt;
  for (const char* key : kCounts) {
    const auto it = v.find(key);
    if (it == v.end() || !it->is_number()) continue;
    if (it->get<double>() > static_cast<double>(kMaxRepetition)) {
      return too_repetitive(field, std::string(key) + " at " + at(),
                            it->is_number_integer() ? it->get<std::int64_t>() : kMaxRepetition + 1);
    }
  }
  if (const auto it = v.find("$ref"); it != v.end() && it->is_string() &&
                                      !it->get_ref<const std::string&>().starts_with("#")) {
    return bad_field(field, "invalid_schema",
                     field + ": the $ref at " + at() + " is not local; only references into the "
                             "schema itself (#/...) are supported");
  }
  if (const auto it = v.find("pattern"); it != v.end() && it->is_string()) {
    const std::string& pattern = it->get_ref<const std::string&>();
    const std::int64_t count = largest_repetition(pattern, false);
    if (count > kMaxRepetition) return too_repetitive(field, "the pattern at " + at(), count);
    if (std::optional<std::string> problem = pattern_problem(pattern)) {
      return bad_field(field, "invalid_schema", field + ": the pattern at " + at() + ": " + *problem);
    }
    std::optional<std::int64_t> max_length;
    if (const auto len = v.find("maxLength"); len != v.end() && len->is_number_integer()) {
      max_length = len->get<std::int64_t>();
    }
    *it = converter_pattern(pattern, max_length);
  }
  for (auto& [key, child] : v.items()) {
    if (std::ranges::find(kData, key) != kData.end()) continue;
    if (auto e = prepare_schema(child, field, path + "/" + key)) return e;
  }
  return std::nullopt;
}

MaybeError set_schema(json schema, const std::string& field, ParsedRequest& req) {
  if (!schema.is_object()) {
    return bad_field(field, "invalid_type", field + " must be a JSON Schema object");
  }
  if (schema.dump().size() > kMaxGrammarBytes) {
    return bad_field(field, "out_of_range",
                     field + " may have at most " + std::to_string(kMaxGrammarBytes) + " bytes");
  }
  if (auto e = prepare_schema(schema, field, "")) return e;
  std::string text = schema.dump();
  req.constraint = OutputConstraint{OutputConstraint::Kind::json_schema, std::move(text), field};
  return std::nullopt;
}

MaybeError set_grammar(const json& v, ParsedRequest& req) {
  std::string text;
  if (auto e = read_string(v, "grammar", text)) return e;
  if (text.empty()) return bad_field("grammar", "out_of_range", "grammar must not be empty");
  if (text.size() > kMaxGrammarBytes) {
    return bad_field("grammar", "out_of_range",
                     "grammar may have at most " + std::to_string(kMaxGrammarBytes) + " bytes");
  }
  const std::int64_t count = largest_repetition(text, true);
  if (count > kMaxRepetition) return too_repetitive("grammar", "a repetition", count);
  req.constraint = OutputConstraint{OutputConstraint::Kind::grammar, std::move(text), "grammar"};
  return std::nullopt;
}

// OpenAI's response_format: {"type": "text"}, {"type": "json_object"} or
// {"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}. The
// schema is always enforced, `strict` or not; an absent schema allows any JSON value.
MaybeError parse_response_format(const json& v, ParsedRequest& req) {
  if (!v.is_object()) {
    return bad_field("response_format", "invalid_type", "response_format must be an object");
  }
  const json* type = find_field(v, "type");
  std::string kind;
  if (type == nullptr) return bad_field("response_format.type", "missing", "response_format.type is required");
  if (auto e = read_string(*type, "response_format.type", kind)) return e;
  if (kind == "text") return std::nullopt;
  if (kind == "json_object") {
    req.constraint = OutputConstraint{OutputConstraint::Kind::json_object, "", "response_format"};
    return std::nullopt;
  }
  if (kind != "json_schema") {
    return bad_field("response_format.type", "out_of_range",
                     "response_format.type must be \"text\", \"json_object\" or \"json_schema\"");
  }
  const json* spec = find_field(v, "json_schema");
  if (spec == nullptr) {
    return bad_field("response_format.json_schema", "missing",
                     "response_format.json_schema is required when type is \"json_schema\"");
  }
  if (!spec->is_object()) {
    return bad_field("response_format.json_schema", "invalid_type",
                     "response_format.json_schema must be an object");
  }
  std::string ignored;
  for (const char* name : {"name", "description"}) {
    if (const json* s = find_field(*spec, name)) {
      if (auto e = read_string(*s, std::string("response_format.json_schema.") + name, ignored)) return e;
    }
  }
  if (const json* strict = find_field(*spec, "strict")) {
    bool on = true;
    if (auto e = read_bool(*strict, "response_format.json_schema.strict", on)) return e;
  }
  const json* schema = find_field(*spec, "schema");
  return set_schema(schema != nullptr ? *schema : json::object(),
                    "response_format.json_schema.schema", req);
}

MaybeError parse_constraint(const json& body, ParsedRequest& req) {
  if (req.dialect != Dialect::native) {
    const json* v = find_field(body, "response_format");
    return v == nullptr ? std::nullopt : parse_response_format(*v, req);
  }
  const json* schema = find_field(body, "json_schema");
  const json* grammar = find_field(body, "grammar");
  if (schema != nullptr && grammar != nullptr) {
    return ApiError{400, "invalid_request", "give at most one of json_schema and grammar",
                    "grammar"};
  }
  if (schema != nullptr) return set_schema(*schema, "json_schema", req);
  if (grammar != nullptr) return set_grammar(*grammar, req);
  return std::nullopt;
}

MaybeError parse_logprobs(const json& body, ParsedRequest& req) {
  const json* logprobs = find_field(body, "logprobs");
  const json* top = find_field(body, "top_logprobs");
  std::int64_t n = 0;
  if (req.dialect == Dialect::openai_completion) {
    // The legacy route: logprobs is the number of alternatives itself.
    if (top != nullptr) {
      return bad_field("top_logprobs", "unsupported",
                       "top_logprobs is a chat field; on /v1/completions logprobs is the count");
    }
    if (logprobs == nullptr) return std::nullopt;
    if (auto e = read_integer(*logprobs, "logprobs", 0, kMaxTopLogprobs, n)) return e;
    req.top_logprobs = static_cast<std::int32_t>(n);
    return std::nullopt;
  }
  bool on = false;
  if (logprobs != nullptr) {
    if (auto e = read_bool(*logprobs, "logprobs", on)) return e;
  }
  if (top != nullptr) {
    if (auto e = read_integer(*top, "top_logprobs", 0, kMaxTopLogprobs, n)) return e;
    if (!on) {
      return bad_field("top_logprobs", "invalid_request",
                       "top_logprobs needs logprobs set to true");
    }
  }
  if (on) req.top_logprobs = static_cast<std::int32_t>(n);
  return std::nullopt;
}

}  // namespace

MaybeError parse_output_fields(const json& body, ParsedRequest& req) {
  if (auto e = parse_constraint(body, req)) return e;
  return parse_logprobs(body, req);
}

}  // namespace llmq
