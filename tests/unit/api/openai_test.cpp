// The OpenAI dialect of request parsing, and the answers' shapes that OpenAI's SDKs read.
#include "api/openai.h"

#include <gtest/gtest.h>

#include "engine/fake_engine.h"
#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

#include "api/validation.h"

namespace llmq {
namespace {

using json = nlohmann::json;

ParsedRequest parse_ok(std::string_view body, Dialect dialect) {
  ParseResult result = parse_request(body, {}, dialect);
  if (const auto* err = std::get_if<ApiError>(&result)) {
    ADD_FAILURE() << "unexpected error: " << err->to_json();
    return {};
  }
  return std::get<ParsedRequest>(std::move(result));
}

ApiError parse_error(std::string_view body, Dialect dialect) {
  ParseResult result = parse_request(body, {}, dialect);
  if (const auto* err = std::get_if<ApiError>(&result)) return *err;
  ADD_FAILURE() << "expected an error for " << body;
  return {};
}

constexpr auto kChat = Dialect::openai_chat;
constexpr auto kCompletion = Dialect::openai_completion;

TEST(OpenAiParse, ChatDefaultsAreOpenAis) {
  const ParsedRequest r = parse_ok(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", kChat);
  EXPECT_FALSE(r.stream);
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 1.0);
  EXPECT_FALSE(r.include_usage);
  ASSERT_TRUE(r.messages);
  EXPECT_EQ(r.messages->at(0).content, "hi");
  EXPECT_EQ(r.dialect, kChat);
}

TEST(OpenAiParse, ChatFieldsAreRead) {
  const ParsedRequest r = parse_ok(
      R"({"messages":[{"role":"developer","content":"be brief"},)"
      R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},)"
      R"({"role":"assistant","content":null}],)"
      R"("max_completion_tokens":7,"stream":true,"stream_options":{"include_usage":true},)"
      R"("n":1,"user":"u-1","presence_penalty":0.5,"frequency_penalty":-1,"logprobs":false,)"
      R"("tools":[],"response_format":{"type":"text"},"logit_bias":{},"seed":3})",
      kChat);
  ASSERT_TRUE(r.messages);
  ASSERT_EQ(r.messages->size(), 3u);
  EXPECT_EQ(r.messages->at(0).role, "system");  // developer is OpenAI's newer name for it
  EXPECT_EQ(r.messages->at(1).content, "ab");
  EXPECT_EQ(r.messages->at(2).content, "");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.user, "u-1");
  EXPECT_DOUBLE_EQ(r.sampling.presence_penalty, 0.5);
  EXPECT_DOUBLE_EQ(r.sampling.frequency_penalty, -1.0);
  EXPECT_EQ(r.sampling.seed, 3u);
}

TEST(OpenAiParse, ChatNeedsMessages) {
  const ApiError e = parse_error(R"({"prompt":"x"})", kChat);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.field, "messages");
}

TEST(OpenAiParse, CompletionTakesOnePromptStringOrAListOfOne) {
  EXPECT_EQ(parse_ok(R"({"prompt":"x"})", kCompletion).prompt, "x");
  EXPECT_EQ(parse_ok(R"({"prompt":["y"]})", kCompletion).prompt, "y");
  const ApiError many = parse_error(R"({"prompt":["a","b"]})", kCompletion);
  EXPECT_EQ(many.code, "unsupported");
  EXPECT_EQ(many.field, "prompt");
  // max_completion_tokens is a chat field; the completions route knows max_tokens only.
  EXPECT_EQ(parse_ok(R"({"prompt":"x","max_tokens":5,"max_completion_tokens":9})", kCompletion).max_tokens, 5);
}

TEST(OpenAiParse, FeaturesLlmqLacksAreRefusedByName) {
  struct Refused {
    const char* body;
    const char* field;
  };
  const std::vector<Refused> cases = {
      {R"("n":9)", "n"},
      {R"("top_logprobs":3)", "top_logprobs"},
      {R"("tools":[{"type":"function","function":{"name":"f"}}])", "tools"},
      {R"("tool_choice":"required")", "tool_choice"},
      {R"("logit_bias":{"50256":-100})", "logit_bias"},
      {R"("echo":true)", "echo"},
      {R"("best_of":3)", "best_of"},
  };
  for (const auto& c : cases) {
    const std::string body = std::string(R"({"messages":[{"role":"user","content":"x"}],)") + c.body + "}";
    const ApiError e = parse_error(body, kChat);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.field, c.field) << c.body;
  }
}

TEST(OpenAiParse, NChoicesUpToTheServersLimit) {
  EXPECT_EQ(parse_ok(R"({"prompt":"x","n":3})", kCompletion).n, 3);
  EXPECT_EQ(parse_ok(R"({"prompt":"x"})", kCompletion).n, 1);
  ParseLimits two;
  two.max_choices = 2;
  const ParseResult over = parse_request(R"({"prompt":"x","n":3})", two, kCompletion);
  ASSERT_TRUE(std::holds_alternative<ApiError>(over));
  EXPECT_EQ(std::get<ApiError>(over).code, "out_of_range");
  EXPECT_EQ(std::get<ApiError>(over).field, "n");
  EXPECT_NE(std::get<ApiError>(over).message.find("slot"), std::string::npos);
  EXPECT_EQ(parse_error(R"({"prompt":"x","n":0})", kCompletion).field, "n");
  EXPECT_EQ(parse_error(R"({"prompt":"x","n":"3"})", kCompletion).code, "invalid_type");
}

TEST(OpenAiParse, TheNativeRouteKeepsItsOwnDefaults) {
  const ParsedRequest r = parse_ok(R"({"prompt":"x","n":5,"stream_options":7})", Dialect::native);
  EXPECT_TRUE(r.stream);  // and n / stream_options are unknown fields there: ignored
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 0.8);
}

// --- answers ---

DoneEvent done_event(std::string reason) {
  DoneEvent done;
  done.finish_reason = std::move(reason);
  done.usage = {.prompt_tokens = 12, .completion_tokens = 5, .cached_tokens = 8};
  return done;
}

// The JSON of each `data:` line of a stream; "[DONE]" as a string.
std::vector<json> frames(const std::string& stream) {
  std::vector<json> out;
  std::size_t at = 0;
  while ((at = stream.find("data: ", at)) != std::string::npos) {
    const std::size_t end = stream.find("\n\n", at);
    const std::string data = stream.substr(at + 6, end - at - 6);
    out.push_back(data == "[DONE]" ? json("[DONE]") : json::parse(data));
    at = end;
  }
  return out;
}

TokenEvent piece(std::string text, std::vector<LogprobEntry> logprobs = {}) {
  return TokenEvent{0, std::move(text), {}, std::move(logprobs)};
}

GatheredOutput gathered(std::string text, std::vector<LogprobEntry> logprobs = {}) {
  return GatheredOutput{std::move(text), std::move(logprobs)};
}

TEST(OpenAiAnswer, ChatCompletionObject) {
  openai::Completion c(kChat, "req_1", 1700000000, "m", false);
  const json body = json::parse(c.whole(gathered("Hello"), done_event("stop")));
  EXPECT_EQ(body["id"], "chatcmpl-req_1");
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["created"], 1700000000);
  EXPECT_EQ(body["model"], "m");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["usage"]["total_tokens"], 17);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
}

TEST(OpenAiAnswer, TextCompletionObject) {
  openai::Completion c(kCompletion, "req_2", 1, "m", false);
  const json body = json::parse(c.whole(gathered("abc"), done_event("length")));
  EXPECT_EQ(body["id"], "cmpl-req_2");
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["text"], "abc");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
}

TEST(OpenAiAnswer, ChatStreamWithUsage) {
  openai::Completion c(kChat, "req_3", 1, "m", true);
  const std::vector<json> f =
      frames(c.opening() + c.delta(piece("He")) + c.delta(piece("llo")) + c.ending(done_event("stop")));
  ASSERT_EQ(f.size(), 6u);
  EXPECT_EQ(f[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(f[1]["choices"][0]["delta"]["content"], "He");
  EXPECT_TRUE(f[1]["usage"].is_null());
  EXPECT_TRUE(f[1]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(f[3]["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(f[3]["choices"][0]["delta"].empty());
  EXPECT_TRUE(f[4]["choices"].empty());
  EXPECT_EQ(f[4]["usage"]["completion_tokens"], 5);
  EXPECT_EQ(f[5], "[DONE]");
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(f[i]["id"], "chatcmpl-req_3");
    EXPECT_EQ(f[i]["object"], "chat.completion.chunk");
  }
}

TEST(OpenAiAnswer, CompletionStreamWithoutUsageHasNoUsageKey) {
  openai::Completion c(kCompletion, "req_4", 1, "m", false);
  EXPECT_EQ(c.opening(), "");
  const openai::Completion chat(kChat, "req_5", 1, "m", false);
  EXPECT_FALSE(frames(chat.opening())[0].contains("usage"));  // only with include_usage
  const std::vector<json> f = frames(c.delta(piece("x")) + c.ending(done_event("length")));
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0]["object"], "text_completion");
  EXPECT_EQ(f[0]["choices"][0]["text"], "x");
  EXPECT_FALSE(f[0].contains("usage"));
  EXPECT_EQ(f[1]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(f[2], "[DONE]");
}

TEST(OpenAiAnswer, ErrorShape) {
  const json e = json::parse(openai::error_json({429, "queue_full", "the queue is full", {}}));
  EXPECT_EQ(e["error"]["type"], "rate_limit_error");
  EXPECT_EQ(e["error"]["code"], "queue_full");
  EXPECT_EQ(e["error"]["message"], "the queue is full");
  EXPECT_TRUE(e["error"]["param"].is_null());
  const json bad = json::parse(openai::error_json(bad_field("n", "unsupported", "n must be 1")));
  EXPECT_EQ(bad["error"]["type"], "invalid_request_error");
  EXPECT_EQ(bad["error"]["param"], "n");
  EXPECT_EQ(json::parse(openai::error_json({401, "unauthorized", "x", {}}))["error"]["type"],
            "authentication_error");
  EXPECT_EQ(json::parse(openai::error_json({503, "not_ready", "x", {}}))["error"]["type"],
            "server_error");
}

TEST(OpenAiAnswer, APromptOverTheContextHasOpenAisCode) {
  const json e = json::parse(openai::error_json(bad_field("messages", "context_exceeded", "long")));
  EXPECT_EQ(e["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(e["error"]["param"], "messages");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  // The native route keeps the contract's code.
  EXPECT_EQ(json::parse(bad_field("prompt", "context_exceeded", "long").to_json())["error"]["code"],
            "context_exceeded");
}

TEST(OpenAiAnswer, AnErrorMidStreamIsADataFrame) {
  const std::string frame = openai::Completion::stream_error({504, "deadline_exceeded", "late", {}});
  const std::vector<json> f = frames(frame);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0]["error"]["code"], "deadline_exceeded");
  EXPECT_EQ(openai::Completion::ping(), ": ping\n\n");
}

TEST(OpenAiAnswer, ModelsListEveryServedModelAndWhetherItIsLoaded) {
  const testing::FakeEngine smol(1, 64, 64, "SmolLM2");
  const testing::FakeEngine gemma(1, 64, 64, "gemma");
  const ModelCatalog catalog({{&smol, 64}, {&gemma, 64}},
                             [](const std::string& name) { return name == "SmolLM2"; });
  const json list = json::parse(openai::model_list_json(catalog, 5));
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 2u);
  EXPECT_EQ(list["data"][0]["id"], "SmolLM2");
  EXPECT_EQ(list["data"][0]["object"], "model");
  EXPECT_EQ(list["data"][0]["owned_by"], "llmq");
  EXPECT_EQ(list["data"][0]["loaded"], true);
  EXPECT_EQ(list["data"][1]["id"], "gemma");
  EXPECT_EQ(list["data"][1]["loaded"], false);
  EXPECT_EQ(json::parse(openai::model_json(catalog, "gemma", catalog.all()[1], 5))["created"], 5);
}

TEST(OpenAiAnswer, AliasesAreListedAfterTheModelsAndNameTheirRoot) {
  const testing::FakeEngine smol(1, 64, 64, "SmolLM2");
  const testing::FakeEngine gemma(1, 64, 64, "gemma");
  const ModelCatalog catalog({{&smol, 64}, {&gemma, 64}},
                             [](const std::string& name) { return name == "gemma"; },
                             parse_model_aliases("gpt-3.5-turbo=gemma", {"SmolLM2", "gemma"}));
  const json list = json::parse(openai::model_list_json(catalog, 5));
  ASSERT_EQ(list["data"].size(), 3u);
  EXPECT_EQ(list["data"][0]["root"], "SmolLM2");
  EXPECT_EQ(list["data"][2]["id"], "gpt-3.5-turbo");
  EXPECT_EQ(list["data"][2]["root"], "gemma");
  EXPECT_EQ(list["data"][2]["loaded"], true);  // its model's state
  ASSERT_NE(catalog.find("gpt-3.5-turbo"), nullptr);
  EXPECT_EQ(catalog.find("gpt-3.5-turbo")->text->info().name, "gemma");
  EXPECT_EQ(catalog.find("gpt-4"), nullptr);
  const json one =
      json::parse(openai::model_json(catalog, "gpt-3.5-turbo", *catalog.find("gpt-3.5-turbo"), 5));
  EXPECT_EQ(one["id"], "gpt-3.5-turbo");
  EXPECT_EQ(one["root"], "gemma");
}

TEST(OpenAiAnswer, BadAliasesAreRefusedWithThePairNamed) {
  const std::vector<std::string> served{"SmolLM2", "gemma"};
  EXPECT_EQ(parse_model_aliases("", served).size(), 0u);
  EXPECT_EQ(parse_model_aliases("a=SmolLM2, Qwen/Qwen2.5-7B-Instruct=gemma", served).size(), 2u);
  for (const char* bad : {"nomodel", "x=unknown", "SmolLM2=gemma", "a=SmolLM2,a=gemma", "=gemma",
                          "a b=gemma", "a="}) {
    EXPECT_THROW(parse_model_aliases(bad, served), std::invalid_argument) << bad;
  }
  try {
    parse_model_aliases("gpt-4=llama", served);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("gpt-4=llama"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("SmolLM2, gemma"), std::string::npos);
  }
}


// "é" split over two tokens: each entry's bytes are exact, its text a replacement character.
std::vector<LogprobEntry> split_e_acute() {
  return {LogprobEntry{"\xC3", -0.25, {{"\xC3", -0.25}, {"a", -2.0}}},
          LogprobEntry{"\xA9", -0.5, {{"\xA9", -0.5}}}};
}

TEST(OpenAiAnswer, ChatLogprobsCarryTokensBytesAndAlternatives) {
  openai::Completion c(kChat, "req_6", 1, "m", false, true);
  const json body = json::parse(c.whole(gathered("\xC3\xA9", split_e_acute()), done_event("stop")));
  const json& content = body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["bytes"], json::array({0xC3}));
  EXPECT_EQ(content[0]["token"], "\xEF\xBF\xBD");
  EXPECT_DOUBLE_EQ(content[0]["logprob"].get<double>(), -0.25);
  ASSERT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(content[0]["top_logprobs"][1]["token"], "a");
  EXPECT_EQ(content[1]["bytes"], json::array({0xA9}));
}

TEST(OpenAiAnswer, LogprobsAreNullUnlessAsked) {
  openai::Completion c(kChat, "req_7", 1, "m", false);
  const json body = json::parse(c.whole(gathered("x", split_e_acute()), done_event("stop")));
  EXPECT_TRUE(body["choices"][0]["logprobs"].is_null());
}

TEST(OpenAiAnswer, LegacyLogprobsCountOffsetsAcrossTheStream) {
  openai::Completion c(kCompletion, "req_8", 1, "m", false, true);
  const std::vector<LogprobEntry> hello{LogprobEntry{"He", -0.1, {{"He", -0.1}, {"Ha", -3.0}}},
                                        LogprobEntry{"llo", -0.2, {}}};
  std::string stream = c.delta(piece("Hello", hello));  // in order: the offsets go on
  stream += c.delta(piece("!", {LogprobEntry{"!", -1.5, {}}}));
  const std::vector<json> f = frames(stream);
  const json& first = f[0]["choices"][0]["logprobs"];
  EXPECT_EQ(first["tokens"], json::array({"He", "llo"}));
  EXPECT_EQ(first["text_offset"], json::array({0, 2}));
  EXPECT_DOUBLE_EQ(first["top_logprobs"][0]["Ha"].get<double>(), -3.0);
  EXPECT_EQ(f[1]["choices"][0]["logprobs"]["text_offset"], json::array({5}));
  EXPECT_DOUBLE_EQ(f[1]["choices"][0]["logprobs"]["token_logprobs"][0].get<double>(), -1.5);
}

TEST(OpenAiAnswer, NChoicesWholeCarryEachChoiceAndItsFinishReason) {
  openai::Completion c(kChat, "req_9", 1, "m", false, false, 3);
  GatheredOutput output = gathered("first");
  TokenEvent second{0, "second", {}, {}, 1};
  TokenEvent third{0, "third", {}, {}, 2};
  output.add(second);
  output.add(third);
  DoneEvent done = done_event("stop");
  done.choice_finish_reasons = {"stop", "length", "stop"};
  const json body = json::parse(c.whole(output, done));
  ASSERT_EQ(body["choices"].size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(body["choices"][i]["index"], i);
  EXPECT_EQ(body["choices"][1]["message"]["content"], "second");
  EXPECT_EQ(body["choices"][2]["message"]["content"], "third");
  EXPECT_EQ(body["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(body["choices"][2]["finish_reason"], "stop");
}

TEST(OpenAiAnswer, NChoicesStreamedOpenAndEndEachChoice) {
  openai::Completion c(kCompletion, "req_10", 1, "m", false, true, 2);
  TokenEvent a{0, "ab", {}, {LogprobEntry{"ab", -0.1, {}}}, 0};
  TokenEvent b{0, "xyz", {}, {LogprobEntry{"xyz", -0.2, {}}}, 1};
  TokenEvent b2{1, "!", {}, {LogprobEntry{"!", -0.3, {}}}, 1};
  DoneEvent done = done_event("stop");
  done.choice_finish_reasons = {"stop", "length"};
  std::string stream = c.delta(a);  // in order: each choice's offsets go on
  stream += c.delta(b);
  stream += c.delta(b2);
  stream += c.ending(done);
  const std::vector<json> f = frames(stream);
  ASSERT_EQ(f.size(), 6u);
  EXPECT_EQ(f[1]["choices"][0]["index"], 1);
  // Each choice's legacy text offsets count its own text.
  EXPECT_EQ(f[2]["choices"][0]["logprobs"]["text_offset"], json::array({3}));
  EXPECT_EQ(f[3]["choices"][0]["index"], 0);
  EXPECT_EQ(f[3]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(f[4]["choices"][0]["index"], 1);
  EXPECT_EQ(f[4]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(f[5], "[DONE]");
  const openai::Completion chat(kChat, "req_11", 1, "m", false, false, 2);
  const std::vector<json> opening = frames(chat.opening());
  ASSERT_EQ(opening.size(), 2u);
  EXPECT_EQ(opening[1]["choices"][0]["index"], 1);
  EXPECT_EQ(opening[1]["choices"][0]["delta"]["role"], "assistant");
}

}  // namespace
}  // namespace llmq
