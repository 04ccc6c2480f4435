#include "telemetry/elastic_client.h"

#include <gtest/gtest.h>

#include <sstream>

namespace llmq::telemetry {
namespace {

TEST(BulkBody, CreateActionWithIdThenDocument) {
  const std::string body = bulk_body({{"logs-llmq.requests-default", "req_1", {{"a", 1}}},
                                      {"s2", "req_\"2", {{"t", "x\ny"}}}});
  std::istringstream in(body);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["create"]["_index"], "logs-llmq.requests-default");
  EXPECT_EQ(lines[0]["create"]["_id"], "req_1");
  EXPECT_EQ(lines[1]["a"], 1);
  EXPECT_EQ(lines[2]["create"]["_id"], "req_\"2");
  EXPECT_EQ(lines[3]["t"], "x\ny");
  EXPECT_EQ(body.back(), '\n');  // _bulk needs the final newline
}

TEST(ClassifyBulk, PerItemOutcomes) {
  const std::string body = R"({"errors":true,"items":[
    {"create":{"_id":"a","status":201}},
    {"create":{"_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
    {"create":{"_id":"c","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}},
    {"create":{"_id":"d","status":503,"error":{"type":"unavailable_shards_exception","reason":"no"}}},
    {"create":{"_id":"e","status":400,"error":{"type":"document_parsing_exception","reason":"bad n"}}}]})";
  const auto r = classify_bulk_response({200, body}, 5);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].outcome, ItemOutcome::stored);
  EXPECT_EQ(r[1].outcome, ItemOutcome::stored);  // already there: a retry, not an error
  EXPECT_EQ(r[2].outcome, ItemOutcome::retry);
  EXPECT_EQ(r[3].outcome, ItemOutcome::retry);
  EXPECT_EQ(r[4].outcome, ItemOutcome::rejected);
  EXPECT_EQ(r[4].status, 400);
  EXPECT_EQ(r[4].reason, "document_parsing_exception: bad n");
}

TEST(ClassifyBulk, WholeRequestFailures) {
  for (long status : {0L, 429L, 500L, 502L, 503L, 401L, 403L, 404L, 302L, 407L}) {
    const auto r = classify_bulk_response({status, "nope"}, 3);
    ASSERT_EQ(r.size(), 3u);
    for (const auto& item : r) EXPECT_EQ(item.outcome, ItemOutcome::retry) << status;
  }
  for (long status : {400L, 413L}) {
    for (const auto& item : classify_bulk_response({status, "refused"}, 2)) {
      EXPECT_EQ(item.outcome, ItemOutcome::rejected) << status;
    }
  }
}

TEST(ClassifyBulk, UnreadableAnswerIsRetried) {
  for (const char* body : {"not json", R"({"items":[]})", R"({"items":[{"create":{"status":201}}]})"}) {
    const auto r = classify_bulk_response({200, body}, 2);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].outcome, ItemOutcome::retry) << body;
  }
}

TEST(ElasticClient, UnreachableServerIsANetworkErrorNotAThrow) {
  ElasticConfig config;
  config.url = "http://127.0.0.1:1";  // nothing listens on port 1
  config.connect_timeout = std::chrono::milliseconds(500);
  ElasticClient client(config);
  const auto r = client.bulk({{"s", "a", {{"x", 1}}}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].outcome, ItemOutcome::retry);
  EXPECT_EQ(r[0].status, 0);
}

}  // namespace
}  // namespace llmq::telemetry
