#include "api/validation.h"

#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace llmq {
namespace {

constexpr int kOk = 200;  // "expected status" of a body that parses

struct Case {
  std::string name;
  std::string body;
  int status;         // kOk, or the ApiError status
  std::string code;   // expected ApiError code ("" when kOk)
  std::string field;  // expected ApiError field; "" means the error must carry no field
};

// A valid prompt body with `depth` containers in total (the root object counts as one).
std::string nested(std::size_t depth) {
  const std::size_t arrays = depth - 1;
  return R"({"prompt":"x","deep":)" + std::string(arrays, '[') + std::string(arrays, ']') + "}";
}

std::string with(const std::string& fields) { return R"({"prompt":"x",)" + fields + "}"; }

const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = {
      // The body as a whole.
      {"malformed_json", R"({"prompt": "x")", 400, "invalid_json", ""},
      {"trailing_comma", R"({"prompt":"x",})", 400, "invalid_json", ""},
      {"trailing_garbage", R"({"prompt":"x"} x)", 400, "invalid_json", ""},
      {"empty_body", "", 400, "invalid_json", ""},
      {"whitespace_body", " \r\n\t", 400, "invalid_json", ""},
      {"array_body", R"(["prompt","x"])", 400, "invalid_json", ""},
      {"string_body", R"("hello")", 400, "invalid_json", ""},
      {"number_body", "42", 400, "invalid_json", ""},
      {"null_body", "null", 400, "invalid_json", ""},
      {"duplicate_key_top_level", R"({"prompt":"a","prompt":"b"})", 400, "invalid_json", "prompt"},
      {"duplicate_key_via_escape", R"({"prompt":"a","\u0070rompt":"b"})", 400, "invalid_json",
       "prompt"},
      {"duplicate_key_in_message",
       R"({"messages":[{"role":"user","content":"a","role":"system"}]})", 400, "invalid_json",
       "role"},
      {"duplicate_key_deep_in_unknown", with(R"("x":{"y":[{"z":1,"z":2}]})"), 400, "invalid_json",
       "z"},
      {"same_keys_in_sibling_objects",
       R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]})", kOk,
       "", ""},
      {"invalid_utf8_in_string", "{\"prompt\":\"a\xFF\"}", 400, "invalid_json", ""},
      {"overlong_utf8_in_key", "{\"prompt\":\"a\",\"k\xC0\xAF\":1}", 400, "invalid_json", ""},
      {"truncated_utf8_in_string", "{\"prompt\":\"\xE2\x82\"}", 400, "invalid_json", ""},
      {"lone_surrogate_escape", R"({"prompt":"\ud800"})", 400, "invalid_json", ""},
      {"nesting_at_limit", nested(64), kOk, "", ""},
      {"nesting_over_limit", nested(65), 400, "invalid_json", ""},
      {"nesting_hostile", std::string(100000, '['), 400, "invalid_json", ""},

      // prompt / messages.
      {"empty_prompt", R"({"prompt":""})", 400, "out_of_range", "prompt"},
      {"prompt_not_string", R"({"prompt":5})", 400, "invalid_type", "prompt"},
      {"both_prompt_and_messages",
       R"({"prompt":"x","messages":[{"role":"user","content":"a"}]})", 400, "invalid_request",
       "prompt"},
      {"neither_prompt_nor_messages", R"({"model":"m"})", 400, "invalid_request", "prompt"},
      {"neither_both_null", R"({"prompt":null,"messages":null})", 400, "invalid_request",
       "prompt"},
      {"null_prompt_with_messages",
       R"({"prompt":null,"messages":[{"role":"user","content":"a"}]})", kOk, "", ""},
      {"unknown_role", R"({"messages":[{"role":"robot","content":"a"}]})", 400, "out_of_range",
       "messages[0].role"},
      {"unknown_role_third_message",
       R"({"messages":[{"role":"system","content":"a"},{"role":"user","content":"b"},)"
       R"({"role":"User","content":"c"}]})",
       400, "out_of_range", "messages[2].role"},
      {"role_not_string", R"({"messages":[{"role":1,"content":"a"}]})", 400, "invalid_type",
       "messages[0].role"},
      {"role_missing", R"({"messages":[{"content":"a"}]})", 400, "invalid_type",
       "messages[0].role"},
      {"content_not_string", R"({"messages":[{"role":"user","content":["a"]}]})", 400,
       "invalid_type", "messages[0].content[0]"},
      {"content_number", R"({"messages":[{"role":"user","content":1}]})", 400,
       "invalid_type", "messages[0].content"},
      {"content_image_part",
       R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})",
       400, "unsupported", "messages[0].content[0].type"},
      {"tool_role", R"({"messages":[{"role":"tool","content":"a"}]})", 400, "unsupported",
       "messages[0].role"},
      {"penalty_out_of_range", with(R"("presence_penalty":2.5)"), 400, "out_of_range",
       "presence_penalty"},
      {"penalty_not_number", with(R"("frequency_penalty":"1")"), 400, "invalid_type",
       "frequency_penalty"},
      {"content_null", R"({"messages":[{"role":"user","content":null}]})", 400, "invalid_type",
       "messages[0].content"},
      {"content_missing", R"({"messages":[{"role":"user"}]})", 400, "invalid_type",
       "messages[0].content"},
      {"message_not_object", R"({"messages":[{"role":"user","content":"a"},"hi"]})", 400,
       "invalid_type", "messages[1]"},
      {"messages_not_array", R"({"messages":"hi"})", 400, "invalid_type", "messages"},
      {"messages_object", R"({"messages":{"role":"user","content":"a"}})", 400, "invalid_type",
       "messages"},
      {"messages_empty", R"({"messages":[]})", 400, "out_of_range", "messages"},
      {"empty_content_allowed", R"({"messages":[{"role":"user","content":""}]})", kOk, "", ""},

      // model.
      {"model_not_string", with(R"("model":7)"), 400, "invalid_type", "model"},
      {"model_empty", with(R"("model":"")"), 400, "out_of_range", "model"},

      // max_tokens.
      {"max_tokens_zero", with(R"("max_tokens":0)"), 400, "out_of_range", "max_tokens"},
      {"max_tokens_negative", with(R"("max_tokens":-1)"), 400, "out_of_range", "max_tokens"},
      {"max_tokens_fraction", with(R"("max_tokens":1.5)"), 400, "invalid_type", "max_tokens"},
      {"max_tokens_string", with(R"("max_tokens":"10")"), 400, "invalid_type", "max_tokens"},
      {"max_tokens_bool", with(R"("max_tokens":true)"), 400, "invalid_type", "max_tokens"},
      {"max_tokens_array", with(R"("max_tokens":[10])"), 400, "invalid_type", "max_tokens"},
      {"max_tokens_1e30", with(R"("max_tokens":1e30)"), 400, "out_of_range", "max_tokens"},
      {"max_tokens_1e400", with(R"("max_tokens":1e400)"), 400, "out_of_range", "max_tokens"},
      {"max_tokens_minus_1e400", with(R"("max_tokens":-1e400)"), 400, "out_of_range",
       "max_tokens"},
      {"max_tokens_beyond_uint64", with(R"("max_tokens":99999999999999999999)"), 400,
       "out_of_range", "max_tokens"},
      {"max_tokens_uint64_max", with(R"("max_tokens":18446744073709551615)"), 400,
       "out_of_range", "max_tokens"},
      {"max_tokens_int64_min", with(R"("max_tokens":-9223372036854775808)"), 400,
       "out_of_range", "max_tokens"},
      {"max_tokens_over_cap", with(R"("max_tokens":1000001)"), 400, "out_of_range",
       "max_tokens"},
      {"max_tokens_bounds", with(R"("max_tokens":1000000)"), kOk, "", ""},
      {"max_tokens_integral_float", with(R"("max_tokens":2.0)"), kOk, "", ""},
      {"huge_number_in_message", R"({"messages":[{"role":"user","content":1e400}]})", 400,
       "out_of_range", "messages[0].content"},

      // Sampling.
      {"temperature_negative", with(R"("temperature":-0.1)"), 400, "out_of_range", "temperature"},
      {"temperature_too_high", with(R"("temperature":2.1)"), 400, "out_of_range", "temperature"},
      {"temperature_string", with(R"("temperature":"hot")"), 400, "invalid_type", "temperature"},
      {"temperature_bool", with(R"("temperature":false)"), 400, "invalid_type", "temperature"},
      {"temperature_bounds", with(R"("temperature":2)"), kOk, "", ""},
      {"top_p_zero", with(R"("top_p":0)"), 400, "out_of_range", "top_p"},
      {"top_p_too_high", with(R"("top_p":1.5)"), 400, "out_of_range", "top_p"},
      {"top_p_string", with(R"("top_p":"0.5")"), 400, "invalid_type", "top_p"},
      {"top_p_one", with(R"("top_p":1)"), kOk, "", ""},
      {"top_k_negative", with(R"("top_k":-1)"), 400, "out_of_range", "top_k"},
      {"top_k_too_high", with(R"("top_k":1000001)"), 400, "out_of_range", "top_k"},
      {"top_k_fraction", with(R"("top_k":2.5)"), 400, "invalid_type", "top_k"},
      {"top_k_zero", with(R"("top_k":0)"), kOk, "", ""},
      {"seed_negative", with(R"("seed":-1)"), 400, "out_of_range", "seed"},
      {"seed_2_pow_32", with(R"("seed":4294967296)"), 400, "out_of_range", "seed"},
      {"seed_string", with(R"("seed":"1")"), 400, "invalid_type", "seed"},
      {"seed_uint32_max", with(R"("seed":4294967295)"), kOk, "", ""},

      // stop.
      {"stop_five_entries", with(R"("stop":["a","b","c","d","e"])"), 400, "out_of_range", "stop"},
      {"stop_empty_string", with(R"("stop":"")"), 400, "out_of_range", "stop"},
      {"stop_empty_entry", with(R"("stop":["a",""])"), 400, "out_of_range", "stop"},
      {"stop_number_entry", with(R"("stop":["a",1])"), 400, "invalid_type", "stop"},
      {"stop_number", with(R"("stop":5)"), 400, "invalid_type", "stop"},
      {"stop_four_entries", with(R"("stop":["a","b","c","d"])"), kOk, "", ""},
      {"stop_257_bytes", with("\"stop\":\"" + std::string(257, 'x') + "\""), 400, "out_of_range",
       "stop"},
      {"stop_entry_257_bytes", with("\"stop\":[\"a\",\"" + std::string(257, 'x') + "\"]"), 400,
       "out_of_range", "stop"},
      {"stop_256_bytes", with("\"stop\":[\"" + std::string(256, 'x') + "\"]"), kOk, "", ""},
      {"stop_empty_array", with(R"("stop":[])"), kOk, "", ""},

      // stream, timeout_ms.
      {"stream_string", with(R"("stream":"yes")"), 400, "invalid_type", "stream"},
      {"stream_number", with(R"("stream":1)"), 400, "invalid_type", "stream"},
      {"timeout_zero", with(R"("timeout_ms":0)"), 400, "out_of_range", "timeout_ms"},
      {"timeout_over_limit", with(R"("timeout_ms":86400001)"), 400, "out_of_range",
       "timeout_ms"},
      {"timeout_string", with(R"("timeout_ms":"5")"), 400, "invalid_type", "timeout_ms"},
      {"timeout_at_limit", with(R"("timeout_ms":86400000)"), kOk, "", ""},

      // keep_alive (Ollama's): a duration string or a number of seconds.
      {"keep_alive_duration", with(R"("keep_alive":"5m")"), kOk, "", ""},
      {"keep_alive_seconds", with(R"("keep_alive":30)"), kOk, "", ""},
      {"keep_alive_negative", with(R"("keep_alive":-1)"), kOk, "", ""},
      {"keep_alive_no_unit", with(R"("keep_alive":"5x")"), 400, "out_of_range", "keep_alive"},
      {"keep_alive_empty", with(R"("keep_alive":"")"), 400, "out_of_range", "keep_alive"},
      {"keep_alive_words", with(R"("keep_alive":"forever")"), 400, "out_of_range", "keep_alive"},
      {"keep_alive_huge", with(R"("keep_alive":1e300)"), 400, "out_of_range", "keep_alive"},
      {"keep_alive_bool", with(R"("keep_alive":true)"), 400, "invalid_type", "keep_alive"},
      {"keep_alive_object", with(R"("keep_alive":{"m":5})"), 400, "invalid_type", "keep_alive"},

      // Leniency the contract asks for.
      {"unknown_fields_ignored",
       with(R"("frequency_penalty":2,"user":"u","tools":[{"type":"function"}],"n":null)"), kOk,
       "", ""},
      {"nulls_are_absent",
       with(R"("model":null,"max_tokens":null,"temperature":null,"top_p":null,"top_k":null,)"
            R"("seed":null,"stop":null,"stream":null,"timeout_ms":null)"),
       kOk, "", ""},
  };
  return kCases;
}

class ParseRequestTable : public ::testing::TestWithParam<Case> {};

TEST_P(ParseRequestTable, Outcome) {
  const Case& c = GetParam();
  const ParseResult result = parse_request(c.body);
  if (c.status == kOk) {
    const auto* err = std::get_if<ApiError>(&result);
    ASSERT_EQ(err, nullptr) << "unexpected error: " << err->to_json();
    return;
  }
  const auto* err = std::get_if<ApiError>(&result);
  ASSERT_NE(err, nullptr) << "body was accepted";
  EXPECT_EQ(err->status, c.status);
  EXPECT_EQ(err->code, c.code) << err->to_json();
  if (c.field.empty()) {
    EXPECT_FALSE(err->field.has_value()) << err->to_json();
  } else {
    EXPECT_EQ(err->field.value_or("<none>"), c.field) << err->to_json();
  }
  EXPECT_FALSE(err->message.empty());
}

INSTANTIATE_TEST_SUITE_P(Rules, ParseRequestTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return param_info.param.name;
                         });

ParsedRequest parse_ok(std::string_view body, const ParseLimits& limits = {}) {
  ParseResult result = parse_request(body, limits);
  if (const auto* err = std::get_if<ApiError>(&result)) {
    ADD_FAILURE() << "unexpected error: " << err->to_json();
    return {};
  }
  return std::get<ParsedRequest>(std::move(result));
}

TEST(ParseRequest, DefaultsWhenOnlyPrompt) {
  ParseLimits limits;
  limits.default_max_tokens = 123;
  const ParsedRequest r = parse_ok(R"({"prompt":"Hello"})", limits);
  EXPECT_EQ(r.prompt, "Hello");
  EXPECT_FALSE(r.messages.has_value());
  EXPECT_FALSE(r.model.has_value());
  EXPECT_EQ(r.max_tokens, 123);
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 0.8);
  EXPECT_FALSE(r.sampling.top_p.has_value());
  EXPECT_FALSE(r.sampling.top_k.has_value());
  EXPECT_FALSE(r.sampling.seed.has_value());
  EXPECT_TRUE(r.stop.empty());
  EXPECT_TRUE(r.stream);
  EXPECT_FALSE(r.timeout_ms.has_value());
}

TEST(ParseRequest, NullsKeepDefaults) {
  const ParsedRequest r = parse_ok(R"({"prompt":"x","max_tokens":null,"stream":null})");
  EXPECT_EQ(r.max_tokens, ParseLimits{}.default_max_tokens);
  EXPECT_TRUE(r.stream);
}

TEST(ParseRequest, AllFieldsParsed) {
  const ParsedRequest r = parse_ok(
      R"({"prompt":"p","model":"llama","max_tokens":64,"temperature":0,"top_p":0.9,)"
      R"("top_k":40,"seed":4294967295,"stop":["\n","END"],"stream":false,"timeout_ms":5000})");
  EXPECT_EQ(r.model, "llama");
  EXPECT_EQ(r.max_tokens, 64);
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 0.0);
  EXPECT_DOUBLE_EQ(r.sampling.top_p.value(), 0.9);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_EQ(r.sampling.seed, 4294967295u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.timeout_ms, 5000);
}

TEST(ParseRequest, StopStringBecomesOneEntry) {
  const ParsedRequest r = parse_ok(R"({"prompt":"x","stop":"###"})");
  EXPECT_EQ(r.stop, std::vector<std::string>{"###"});
}

TEST(ParseRequest, MessagesKeepOrder) {
  const ParsedRequest r = parse_ok(
      R"({"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},)"
      R"({"role":"assistant","content":"hello","name":"bot"},{"role":"user","content":"é😀"}]})");
  ASSERT_TRUE(r.messages.has_value());
  EXPECT_FALSE(r.prompt.has_value());
  const std::vector<ChatMessage>& m = *r.messages;
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].role, "system");
  EXPECT_EQ(m[0].content, "be brief");
  EXPECT_EQ(m[1].role, "user");
  EXPECT_EQ(m[2].role, "assistant");
  EXPECT_EQ(m[2].content, "hello");
  EXPECT_EQ(m[3].content, "é😀");
}

TEST(ParseRequest, IntegralFloatAcceptedAsInteger) {
  EXPECT_EQ(parse_ok(R"({"prompt":"x","max_tokens":2.0})").max_tokens, 2);
}

TEST(ParseRequest, TimeoutBoundComesFromLimits) {
  ParseLimits limits;
  limits.max_timeout_ms = 1000;
  EXPECT_EQ(parse_ok(R"({"prompt":"x","timeout_ms":1000})", limits).timeout_ms, 1000);
  const ParseResult r = parse_request(R"({"prompt":"x","timeout_ms":1001})", limits);
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  EXPECT_EQ(std::get<ApiError>(r).code, "out_of_range");
}

TEST(ParseRequest, KeepAliveBecomesMilliseconds) {
  const auto keep_alive = [](const std::string& value) {
    return parse_ok(R"({"prompt":"x","keep_alive":)" + value + "}").keep_alive_ms;
  };
  EXPECT_EQ(parse_ok(R"({"prompt":"x"})").keep_alive_ms, std::nullopt);
  EXPECT_EQ(parse_ok(R"({"prompt":"x","keep_alive":null})").keep_alive_ms, std::nullopt);
  EXPECT_EQ(keep_alive(R"("5m")"), 300000);
  EXPECT_EQ(keep_alive(R"("30s")"), 30000);
  EXPECT_EQ(keep_alive(R"("1h")"), 3600000);
  EXPECT_EQ(keep_alive(R"("250ms")"), 250);
  EXPECT_EQ(keep_alive(R"("1h30m")"), 5400000);
  EXPECT_EQ(keep_alive(R"("0")"), 0);
  EXPECT_EQ(keep_alive("0"), 0);
  EXPECT_EQ(keep_alive("30"), 30000);
  EXPECT_EQ(keep_alive("2.5"), 2500);
  EXPECT_EQ(keep_alive(R"("-1m")"), -1);  // negative: keep loaded
  EXPECT_EQ(keep_alive("-5"), -1);
}

TEST(ParseRequest, KeepAliveOnEveryRoute) {
  for (const auto& [dialect, body] :
       {std::pair{Dialect::native, R"({"prompt":"x","keep_alive":"0"})"},
        std::pair{Dialect::openai_completion, R"({"prompt":"x","keep_alive":"0"})"},
        std::pair{Dialect::openai_chat,
                  R"({"messages":[{"role":"user","content":"x"}],"keep_alive":"0"})"}}) {
    const ParseResult ok = parse_request(body, {}, dialect);
    ASSERT_TRUE(std::holds_alternative<ParsedRequest>(ok)) << body;
    EXPECT_EQ(std::get<ParsedRequest>(ok).keep_alive_ms, 0);
  }
  const ParseResult bad = parse_request(
      R"({"messages":[{"role":"user","content":"x"}],"keep_alive":"soon"})", {},
      Dialect::openai_chat);
  ASSERT_TRUE(std::holds_alternative<ApiError>(bad));
  EXPECT_EQ(std::get<ApiError>(bad).field, "keep_alive");
}

TEST(ParseRequest, EscapedTextIsDecoded) {
  const ParsedRequest r = parse_ok(R"({"prompt":"a\n\u00e9\ud83d\ude00"})");
  EXPECT_EQ(r.prompt, "a\n\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(ApiErrorJson, ContractShapeWithField) {
  const ApiError e = bad_field("max_tokens", "out_of_range", "max_tokens must be positive");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.to_json(),
            R"({"error":{"code":"out_of_range","message":"max_tokens must be positive",)"
            R"("field":"max_tokens"}})");
}

TEST(ApiErrorJson, FieldOmittedWhenUnset) {
  const ApiError e{400, "invalid_json", "request body is \"bad\"", std::nullopt};
  EXPECT_EQ(e.to_json(),
            R"({"error":{"code":"invalid_json","message":"request body is \"bad\""}})");
}

TEST(ApiErrorJson, InvalidUtf8DoesNotThrow) {
  const ApiError e = bad_field("k\xFF", "invalid_json", "duplicate");
  const auto parsed = nlohmann::json::parse(e.to_json());
  EXPECT_EQ(parsed["error"]["field"], "k\xEF\xBF\xBD");
}

}  // namespace
}  // namespace llmq
