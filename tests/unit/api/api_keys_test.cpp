// API keys: the list flag, the key file with per-key limits, matching, and refusing bad entries.
#include "api/api_keys.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace llmq {
namespace {

std::string key_file(const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("llmq_keys_" + std::to_string(::getpid()) + "_" +
                     std::to_string(std::hash<std::string>{}(text)));
  std::ofstream(path) << text;
  return path.string();
}

TEST(ApiKeys, NoneConfiguredMeansOpen) {
  const ApiKeys keys = ApiKeys::load("", "");
  EXPECT_FALSE(keys.enabled());
  EXPECT_EQ(keys.match("anything"), nullptr);
}

TEST(ApiKeys, ListFlagNamesKeysByPosition) {
  const ApiKeys keys = ApiKeys::load("alpha-key-1, beta-key-22 ,", "");
  ASSERT_EQ(keys.size(), 2u);
  ASSERT_NE(keys.match("beta-key-22"), nullptr);
  EXPECT_EQ(keys.match("beta-key-22")->name, "key-2");
  EXPECT_EQ(keys.match("beta-key-2"), nullptr);
  EXPECT_EQ(keys.match("beta-key-222"), nullptr);
  EXPECT_EQ(keys.match(""), nullptr);
}

TEST(ApiKeys, FileWithNamesLimitsAndComments) {
  const ApiKeys keys = ApiKeys::load(
      "", key_file("# team keys\n\nsk-team-aaaa name=team max_concurrent=4 rate=2.5 burst=10\n"
                   "sk-batch-bbbb name=batch   # no limits of its own\n"));
  ASSERT_EQ(keys.size(), 2u);
  const ApiKey* team = keys.match("sk-team-aaaa");
  ASSERT_NE(team, nullptr);
  EXPECT_EQ(team->name, "team");
  ASSERT_TRUE(team->limits);
  EXPECT_EQ(team->limits->max_concurrent, 4);
  EXPECT_DOUBLE_EQ(team->limits->rate, 2.5);
  EXPECT_DOUBLE_EQ(team->limits->burst, 10);
  EXPECT_FALSE(keys.match("sk-batch-bbbb")->limits);
}

TEST(ApiKeys, BadEntriesNameTheLine) {
  const auto message = [](const std::string& list, const std::string& file_text) {
    try {
      ApiKeys::load(list, file_text.empty() ? "" : key_file(file_text));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("short", "").find("8-256 characters"), std::string::npos);
  EXPECT_NE(message("", "ok-key-123 colour=red\n").find(":1: unknown option \"colour\""), std::string::npos);
  EXPECT_NE(message("", "\nok-key-123 rate=-1\n").find(":2: bad value for rate"), std::string::npos);
  EXPECT_NE(message("", "ok-key-123 max_concurrent=x\n").find("bad value"), std::string::npos);
  EXPECT_NE(message("same-key-1,same-key-1", "").find("twice"), std::string::npos);
  EXPECT_NE(message("", "k-one-1234 name=a\nk-two-1234 name=a\n").find("name \"a\" is used twice"),
            std::string::npos);
  EXPECT_NE(message("", "k-one-1234 name\n").find("expected name=value"), std::string::npos);
  try {
    ApiKeys::load("", "/nonexistent/keys");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read --api-key-file"), std::string::npos);
  }
}

TEST(ApiKeys, AHashOrCommaInAKeyIsRefusedNotCutShort) {
  const auto message = [](const std::string& file_text) {
    try {
      ApiKeys::load("", key_file(file_text));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  // Before: "sk-abc#def-123" became the key "sk-abc", and the rest a comment.
  EXPECT_NE(message("sk-abc#def-123\n").find(":1: a key may not contain '#'"), std::string::npos);
  EXPECT_NE(message("ok-key-123\nsk-a,b-12345\n").find(":2: a key may not contain ','"),
            std::string::npos);
  // A comment still works at the start of a line and after a space.
  const ApiKeys keys = ApiKeys::load("", key_file("#top\nsk-good-123 # trailing #words\n"));
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_NE(keys.match("sk-good-123"), nullptr);
}

TEST(ApiKeys, PresentedAsBearerOrHeader) {
  EXPECT_EQ(presented_key("Bearer sk-1", ""), "sk-1");
  EXPECT_EQ(presented_key("bearer   sk-1  ", ""), "sk-1");
  EXPECT_EQ(presented_key("", "sk-2"), "sk-2");
  EXPECT_EQ(presented_key("Basic dXNlcg==", "sk-3"), "sk-3") << "not a bearer token";
  EXPECT_EQ(presented_key("Bearer ", ""), "");
  EXPECT_EQ(presented_key("", ""), "");
}

TEST(ApiKeys, ConstantTimeEqualsIsEquality) {
  EXPECT_TRUE(constant_time_equals("secret-1", "secret-1"));
  EXPECT_FALSE(constant_time_equals("secret-1", "secret-2"));
  EXPECT_FALSE(constant_time_equals("secret-1", "secret-1x"));
  EXPECT_FALSE(constant_time_equals("secret-1", "secret-"));
  EXPECT_FALSE(constant_time_equals("secret-1", ""));
  EXPECT_FALSE(constant_time_equals("", ""));
  EXPECT_FALSE(constant_time_equals("ab", "abab")) << "a repeated secret is not the secret";
}

}  // namespace
}  // namespace llmq
