// The body of POST /v1/embeddings, and its answer's shape.
#include "api/embedding_fields.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>
#include <variant>

#include "api/openai.h"
#include "api/prompt.h"
#include "api/validation.h"
#include "engine/fake_engine.h"
#include "util/base64.h"

namespace llmq {
namespace {

constexpr auto kEmbedding = Dialect::openai_embedding;

ParsedRequest ok(const std::string& body) {
  ParseResult result = parse_request(body, {}, kEmbedding);
  if (const auto* err = std::get_if<ApiError>(&result)) {
    ADD_FAILURE() << body << ": " << err->to_json();
    return {};
  }
  return std::get<ParsedRequest>(std::move(result));
}

TEST(EmbeddingFields, AStringOrAnArrayOfStrings) {
  EXPECT_EQ(ok(R"({"input":"hello"})").embed_inputs, std::vector<std::string>{"hello"});
  const ParsedRequest r = ok(R"({"input":["a","b"],"encoding_format":"base64","dimensions":3,)"
                             R"("user":"u","model":"m","stream":true})");
  EXPECT_EQ(r.embed_inputs, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.embed_base64);
  EXPECT_EQ(r.dimensions, 3);
  EXPECT_EQ(r.user, "u");
  EXPECT_FALSE(r.stream);  // answered whole, whatever was asked
}

TEST(EmbeddingFields, RefusalsNameTheField) {
  struct Refusal {
    const char* body;
    const char* code;
    const char* field;
  };
  const std::string too_many = R"({"input":[)" + [] {
    std::string s;
    for (int i = 0; i <= kMaxEmbedInputs; ++i) s += (i ? ",\"x\"" : "\"x\"");
    return s;
  }() + "]}";
  const std::vector<Refusal> cases = {
      {R"({})", "missing", "input"},
      {R"({"input":""})", "out_of_range", "input"},
      {R"({"input":[]})", "out_of_range", "input"},
      {R"({"input":["a",""]})", "out_of_range", "input[1]"},
      {R"({"input":["a",3]})", "unsupported", "input[1]"},
      {R"({"input":[1,2,3]})", "unsupported", "input"},
      {R"({"input":[[1,2]]})", "unsupported", "input[0]"},
      {R"({"input":{"a":1}})", "invalid_type", "input"},
      {R"({"input":"a","encoding_format":"int8"})", "out_of_range", "encoding_format"},
      {R"({"input":"a","dimensions":0})", "out_of_range", "dimensions"},
      {R"({"input":"a","dimensions":"3"})", "invalid_type", "dimensions"},
      {too_many.c_str(), "out_of_range", "input"},
  };
  for (const Refusal& c : cases) {
    ParseResult result = parse_request(c.body, {}, kEmbedding);
    const auto* err = std::get_if<ApiError>(&result);
    ASSERT_NE(err, nullptr) << c.body;
    EXPECT_EQ(err->code, c.code) << c.body;
    EXPECT_EQ(err->field.value_or(""), c.field) << c.body;
  }
}

TEST(EmbeddingFields, TheModelHalfTokenizesAndChecksEachInput) {
  const testing::FakeEngine model(1, 130, 8);  // one token per byte
  const ModelCatalog catalog({{&model, 130}});   // inputs of at most 128 tokens (2 x 64)
  PromptResult good = validate_for_model(ok(R"({"input":["abc","d"],"dimensions":3})"), catalog);
  ASSERT_TRUE(std::holds_alternative<ValidatedRequest>(good));
  const ValidatedRequest& v = std::get<ValidatedRequest>(good);
  EXPECT_TRUE(v.is_embedding());
  ASSERT_EQ(v.embed_tokens.size(), 2u);
  EXPECT_EQ(v.embed_tokens[1], std::vector<Token>{'d'});
  PromptResult long_input =
      validate_for_model(ok(R"({"input":["a",")" + std::string(129, 'x') + R"("]})"), catalog);
  ASSERT_TRUE(std::holds_alternative<ApiError>(long_input));
  EXPECT_EQ(std::get<ApiError>(long_input).field, "input[1]");
  EXPECT_EQ(std::get<ApiError>(long_input).code, "context_exceeded");
  PromptResult dims = validate_for_model(ok(R"({"input":"a","dimensions":2})"), catalog);
  ASSERT_TRUE(std::holds_alternative<ApiError>(dims));
  EXPECT_EQ(std::get<ApiError>(dims).field, "dimensions");
}

TEST(EmbeddingAnswer, FloatsOrBase64OfLittleEndianFloat32) {
  const std::vector<std::vector<float>> vectors{{0.5F, -1.0F}, {0.0F, 2.0F}};
  const auto floats = nlohmann::json::parse(openai::embeddings_json(vectors, "m", {7, 0, 0}, false));
  EXPECT_EQ(floats["object"], "list");
  EXPECT_EQ(floats["data"][1]["index"], 1);
  EXPECT_EQ(floats["data"][1]["object"], "embedding");
  EXPECT_EQ(floats["data"][0]["embedding"], nlohmann::json::array({0.5, -1.0}));
  EXPECT_EQ(floats["usage"]["prompt_tokens"], 7);
  EXPECT_EQ(floats["usage"]["total_tokens"], 7);
  const auto b64 = nlohmann::json::parse(openai::embeddings_json(vectors, "m", {7, 0, 0}, true));
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), vectors[0].data(), 8);  // this test runs little-endian
  EXPECT_EQ(b64["data"][0]["embedding"], base64_encode(bytes));
}

TEST(Base64, KnownVectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\x80", 3)), "/wCA");
}

}  // namespace
}  // namespace llmq
