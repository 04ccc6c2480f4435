#include "api/cors.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace llmq {
namespace {

std::string header(const HeaderList& headers, std::string_view name) {
  std::string found;
  for (const auto& [key, value] : headers)
    if (key == name) found += (found.empty() ? "" : " | ") + value;
  return found;
}

TEST(Cors, OffByDefaultAllowsNoOriginAndSaysNothing) {
  const CorsPolicy off;
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.for_request("https://app.example").empty());
  EXPECT_FALSE(off.for_preflight("https://app.example", "POST, OPTIONS", "POST", ""));
}

TEST(Cors, NamedOriginIsEchoedAndOthersGetOnlyVary) {
  const CorsPolicy cors = CorsPolicy::parse("https://app.example, http://localhost:3000", false);
  const HeaderList ok = cors.for_request("http://localhost:3000");
  EXPECT_EQ(header(ok, "Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_EQ(header(ok, "Vary"), "Origin");
  EXPECT_NE(header(ok, "Access-Control-Expose-Headers").find("X-Request-Id"), std::string::npos);
  EXPECT_EQ(header(ok, "Access-Control-Allow-Credentials"), "");

  const HeaderList other = cors.for_request("https://evil.example");
  EXPECT_EQ(header(other, "Access-Control-Allow-Origin"), "");
  EXPECT_EQ(header(other, "Vary"), "Origin");  // a cache must not serve one origin's answer to another
  EXPECT_EQ(header(cors.for_request("http://localhost:3001"), "Access-Control-Allow-Origin"), "");
}

TEST(Cors, OriginsMatchWithoutRegardToCase) {
  const CorsPolicy cors = CorsPolicy::parse("https://App.Example", false);
  EXPECT_TRUE(cors.allows("https://app.example"));
  EXPECT_FALSE(cors.allows("https://app.example.evil"));
  EXPECT_FALSE(cors.allows(""));
}

TEST(Cors, StarAllowsEveryOriginWithAStarAndNoCredentials) {
  const CorsPolicy cors = CorsPolicy::parse("*", false);
  const HeaderList headers = cors.for_request("https://anything.example");
  EXPECT_EQ(header(headers, "Access-Control-Allow-Origin"), "*");
  EXPECT_EQ(header(headers, "Access-Control-Allow-Credentials"), "");
  EXPECT_THROW(CorsPolicy::parse("*", true), std::invalid_argument);
  EXPECT_THROW(CorsPolicy::parse("https://a.example, *", true), std::invalid_argument);
}

TEST(Cors, CredentialsOnlyForNamedOrigins) {
  const CorsPolicy cors = CorsPolicy::parse("https://app.example", true);
  const HeaderList headers = cors.for_request("https://app.example");
  EXPECT_EQ(header(headers, "Access-Control-Allow-Credentials"), "true");
  EXPECT_EQ(header(headers, "Access-Control-Allow-Origin"), "https://app.example");
}

TEST(Cors, MalformedOriginsAreRefusedWithTheEntryNamed) {
  for (const char* bad : {"app.example", "https://app.example/", "https://app.example/path",
                          "https://", "https://user@app.example", "ht tp://app.example"}) {
    try {
      CorsPolicy::parse(bad, false);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(Cors, PreflightAllowsTheRoutesMethodsAndTheAskedHeaders) {
  const CorsPolicy cors = CorsPolicy::parse("https://app.example", false, 120);
  const auto allowed = cors.for_preflight("https://app.example", "POST, OPTIONS", "POST",
                                          "Content-Type, Authorization, X-Stainless-OS");
  ASSERT_TRUE(allowed);
  EXPECT_EQ(header(*allowed, "Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(header(*allowed, "Access-Control-Allow-Methods"), "POST, OPTIONS");
  EXPECT_EQ(header(*allowed, "Access-Control-Allow-Headers"),
            "content-type, authorization, x-stainless-os");
  EXPECT_EQ(header(*allowed, "Access-Control-Max-Age"), "120");
  EXPECT_NE(header(*allowed, "Vary").find("Access-Control-Request-Headers"), std::string::npos);
  EXPECT_EQ(header(*allowed, "Access-Control-Expose-Headers"), "");
}

TEST(Cors, PreflightRefusesOtherOriginsOtherMethodsAndBadHeaderNames) {
  const CorsPolicy cors = CorsPolicy::parse("https://app.example", false);
  EXPECT_FALSE(cors.for_preflight("https://evil.example", "POST, OPTIONS", "POST", ""));
  EXPECT_FALSE(cors.for_preflight("https://app.example", "POST, OPTIONS", "DELETE", ""));
  EXPECT_FALSE(cors.for_preflight("https://app.example", "GET, HEAD, OPTIONS", "POST", ""));
  EXPECT_FALSE(cors.for_preflight("https://app.example", "POST, OPTIONS", "POST", "bad header"));
  EXPECT_FALSE(cors.for_preflight("https://app.example", "POST, OPTIONS", "POST", "x\r\ny"));
}

}  // namespace
}  // namespace llmq
