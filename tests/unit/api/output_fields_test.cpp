// Structured output and log-probability fields: what each route accepts, and the refusals that
// name the field before anything is queued.
#include "api/output_fields.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>

#include "api/validation.h"

namespace llmq {
namespace {

constexpr auto kNative = Dialect::native;
constexpr auto kChat = Dialect::openai_chat;
constexpr auto kCompletion = Dialect::openai_completion;

std::string body_for(Dialect dialect, const std::string& fields) {
  const std::string input = dialect == kChat ? R"("messages":[{"role":"user","content":"x"}])"
                                             : R"("prompt":"x")";
  return "{" + input + "," + fields + "}";
}

ParsedRequest ok(Dialect dialect, const std::string& fields) {
  ParseResult result = parse_request(body_for(dialect, fields), {}, dialect);
  if (const auto* err = std::get_if<ApiError>(&result)) {
    ADD_FAILURE() << fields << ": " << err->to_json();
    return {};
  }
  return std::get<ParsedRequest>(std::move(result));
}

ApiError refused(Dialect dialect, const std::string& fields) {
  ParseResult result = parse_request(body_for(dialect, fields), {}, dialect);
  if (const auto* err = std::get_if<ApiError>(&result)) return *err;
  ADD_FAILURE() << fields << " was accepted";
  return {};
}

TEST(OutputFields, NativeJsonSchemaIsKeptAsText) {
  const ParsedRequest r = ok(kNative, R"("json_schema":{"type":"object","required":["a"]})");
  ASSERT_TRUE(r.constraint);
  EXPECT_EQ(r.constraint->kind, OutputConstraint::Kind::json_schema);
  EXPECT_EQ(nlohmann::json::parse(r.constraint->source)["required"][0], "a");
  EXPECT_EQ(r.constraint->field, "json_schema");
}

TEST(OutputFields, NativeGrammar) {
  const ParsedRequest r = ok(kNative, R"("grammar":"root ::= \"yes\" | \"no\"")");
  ASSERT_TRUE(r.constraint);
  EXPECT_EQ(r.constraint->kind, OutputConstraint::Kind::grammar);
  EXPECT_EQ(r.constraint->source, R"(root ::= "yes" | "no")");
}

TEST(OutputFields, NoConstraintByDefault) {
  EXPECT_FALSE(ok(kNative, R"("max_tokens":3)").constraint);
  EXPECT_FALSE(ok(kChat, R"("response_format":{"type":"text"})").constraint);
  EXPECT_FALSE(ok(kChat, R"("response_format":null)").constraint);
}

TEST(OutputFields, ResponseFormatOnBothOpenAiRoutes) {
  for (const Dialect d : {kChat, kCompletion}) {
    const ParsedRequest object = ok(d, R"("response_format":{"type":"json_object"})");
    ASSERT_TRUE(object.constraint);
    EXPECT_EQ(object.constraint->kind, OutputConstraint::Kind::json_object);
    const ParsedRequest schema = ok(d, R"("response_format":{"type":"json_schema","json_schema":)"
                                       R"({"name":"n","strict":true,"schema":{"type":"integer"}}})");
    ASSERT_TRUE(schema.constraint);
    EXPECT_EQ(schema.constraint->kind, OutputConstraint::Kind::json_schema);
    EXPECT_EQ(schema.constraint->source, R"({"type":"integer"})");
    EXPECT_EQ(schema.constraint->field, "response_format.json_schema.schema");
  }
}

TEST(OutputFields, AbsentSchemaAllowsAnyJson) {
  const ParsedRequest r = ok(kChat, R"("response_format":{"type":"json_schema","json_schema":{"name":"n"}})");
  ASSERT_TRUE(r.constraint);
  EXPECT_EQ(r.constraint->source, "{}");
}

TEST(OutputFields, RefusalsNameTheField) {
  struct Refusal {
    Dialect dialect;
    const char* fields;
    const char* code;
    const char* field;
  };
  const std::string deep_repeat = R"("json_schema":{"type":"object","properties":{"a":)"
                                  R"({"type":"array","maxItems":100000}}})";
  const std::vector<Refusal> cases = {
      {kNative, R"("json_schema":"{}")", "invalid_type", "json_schema"},
      {kNative, R"("json_schema":[1])", "invalid_type", "json_schema"},
      {kNative, R"("grammar":42)", "invalid_type", "grammar"},
      {kNative, R"("grammar":"")", "out_of_range", "grammar"},
      {kNative, R"("grammar":"root ::= \"a\"{1001}")", "out_of_range", "grammar"},
      {kNative, R"("grammar":"root ::= [a-z]{2,99999999999999999999}")", "out_of_range", "grammar"},
      {kNative, R"("json_schema":{},"grammar":"root ::= \"a\"")", "invalid_request", "grammar"},
      {kNative, deep_repeat.c_str(), "out_of_range", "json_schema"},
      {kNative, R"("json_schema":{"type":"string","pattern":"^a{5000}$"})", "out_of_range", "json_schema"},
      {kNative, R"("json_schema":{"type":"string","maxLength":1e9})", "out_of_range", "json_schema"},
      {kNative, R"("json_schema":{"$ref":"https://example.com/s.json"})", "invalid_schema", "json_schema"},
      {kNative, R"("json_schema":{"type":"string","pattern":"^(?=a).*$"})", "invalid_schema", "json_schema"},
      {kNative, R"("json_schema":{"type":"string","pattern":"^[\\-a]+$"})", "invalid_schema", "json_schema"},
      {kNative, R"("json_schema":{"type":"string","pattern":"^\\D+$"})", "invalid_schema", "json_schema"},
      {kNative, R"("json_schema":{"type":"string","pattern":"^a\\"})", "invalid_schema", "json_schema"},
      {kNative, R"("json_schema":{"type":"string","pattern":"a^b"})", "invalid_schema", "json_schema"},
      {kNative, R"("json_schema":{"type":"string","pattern":"^[ab"})", "invalid_schema", "json_schema"},
      {kChat, R"("response_format":"json")", "invalid_type", "response_format"},
      {kChat, R"("response_format":{})", "missing", "response_format.type"},
      {kChat, R"("response_format":{"type":"xml"})", "out_of_range", "response_format.type"},
      {kChat, R"("response_format":{"type":"json_schema"})", "missing", "response_format.json_schema"},
      {kChat, R"("response_format":{"type":"json_schema","json_schema":{"schema":true}})", "invalid_type",
       "response_format.json_schema.schema"},
      {kChat, R"("response_format":{"type":"json_schema","json_schema":{"strict":"yes"}})", "invalid_type",
       "response_format.json_schema.strict"},
      {kChat, R"("logprobs":"yes")", "invalid_type", "logprobs"},
      {kChat, R"("logprobs":true,"top_logprobs":21)", "out_of_range", "top_logprobs"},
      {kChat, R"("top_logprobs":2)", "invalid_request", "top_logprobs"},
      {kCompletion, R"("logprobs":true)", "invalid_type", "logprobs"},
      {kCompletion, R"("logprobs":21)", "out_of_range", "logprobs"},
      {kCompletion, R"("logprobs":1,"top_logprobs":1)", "unsupported", "top_logprobs"},
  };
  for (const Refusal& c : cases) {
    const ApiError e = refused(c.dialect, c.fields);
    EXPECT_EQ(e.status, 400) << c.fields;
    EXPECT_EQ(e.code, c.code) << c.fields << " " << e.to_json();
    EXPECT_EQ(e.field.value_or(""), c.field) << c.fields;
  }
}

TEST(OutputFields, RepetitionsAtTheLimitAreAccepted) {
  ok(kNative, R"("grammar":"root ::= [a-z]{0,1000}")");
  ok(kNative, R"("json_schema":{"type":"string","maxLength":1000,"pattern":"^x{3,1000}$"})");
  // Braces that are not a repetition count are no repetition.
  ok(kNative, R"("grammar":"root ::= \"{99999}x\" | \"{\" [0-9]+ \"}\"")");
}

std::string pattern_sent(const std::string& pattern) {
  const ParsedRequest r = ok(kNative, R"("json_schema":{"type":"string","pattern":)" +
                                          nlohmann::json(pattern).dump() + "}");
  return r.constraint ? nlohmann::json::parse(r.constraint->source)["pattern"].get<std::string>() : "";
}

TEST(OutputFields, PatternsAreAnchoredAsJsonSchemaMeansThem) {
  const std::string any = "[^\"\\\\\\x00-\\x1F]";  // a character a JSON string holds as is
  EXPECT_EQ(pattern_sent("^[a-z]+$"), "^[a-z]+$");
  EXPECT_EQ(pattern_sent("[0-9]{3}"), "^" + any + "*(?:[0-9]{3})" + any + "*$");
  EXPECT_EQ(pattern_sent("^ab"), "^(?:ab)" + any + "*$");
  EXPECT_EQ(pattern_sent("ab$"), "^" + any + "*(?:ab)$");
  EXPECT_EQ(pattern_sent("a\\$"), "^" + any + "*(?:a\\$)" + any + "*$");  // \$ is no anchor
  EXPECT_EQ(pattern_sent("^\\d+(?:x|y)$"), "^[0-9]+(?:x|y)$");
  EXPECT_EQ(pattern_sent("^[\\w.]\\s$"), "^[a-zA-Z0-9_.][ ]$");
  // A bare dot could let a quote end the JSON string early; dots in classes or escaped stay.
  EXPECT_EQ(pattern_sent("^a.[.]\\.$"), "^a" + any + "[.]\\.$");
}

TEST(OutputFields, AFreeEndIsBoundedByMaxLength) {
  const ParsedRequest r = ok(kNative, R"("json_schema":{"type":"string","pattern":"x","maxLength":9})");
  ASSERT_TRUE(r.constraint);
  const std::string sent = nlohmann::json::parse(r.constraint->source)["pattern"];
  EXPECT_NE(sent.find("{0,9}(?:x)"), std::string::npos) << sent;
}

TEST(OutputFields, DataInsideTheSchemaIsNotRewritten) {
  const ParsedRequest r = ok(kNative, R"("json_schema":{"const":{"pattern":"abc"},)"
                                      R"("properties":{"pattern":{"type":"string"}}})");
  ASSERT_TRUE(r.constraint);
  EXPECT_EQ(nlohmann::json::parse(r.constraint->source)["const"]["pattern"], "abc");
}

TEST(OutputFields, LogprobsPerRoute) {
  EXPECT_FALSE(ok(kChat, R"("logprobs":false)").top_logprobs);
  EXPECT_EQ(ok(kChat, R"("logprobs":true)").top_logprobs, 0);
  EXPECT_EQ(ok(kChat, R"("logprobs":true,"top_logprobs":20)").top_logprobs, 20);
  EXPECT_EQ(ok(kNative, R"("logprobs":true,"top_logprobs":3)").top_logprobs, 3);
  EXPECT_EQ(ok(kCompletion, R"("logprobs":5)").top_logprobs, 5);
  EXPECT_EQ(ok(kCompletion, R"("logprobs":0)").top_logprobs, 0);
  EXPECT_FALSE(ok(kCompletion, R"("logprobs":null)").top_logprobs);
}

}  // namespace
}  // namespace llmq
