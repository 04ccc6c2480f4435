// Against a real Elasticsearch node (scripts/elasticsearch.sh start). Skipped unless
// LLMQ_TEST_ELASTIC_URL is set; the restart test also needs LLMQ_TEST_ELASTIC_STOP and
// LLMQ_TEST_ELASTIC_START, shell commands that stop and start that node (scripts/test.sh sets
// all three). Each test writes to its own index, deleted at the end.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "telemetry/elastic_client.h"
#include "telemetry/elastic_sink.h"
#include "telemetry/temp_dir.h"

namespace llmq::telemetry {
namespace {

using namespace std::chrono_literals;

ElasticConfig config_for(const std::string& url) {
  ElasticConfig config;
  config.url = url;
  return config;
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

class ElasticIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = env("LLMQ_TEST_ELASTIC_URL");
    if (url_.empty()) GTEST_SKIP() << "LLMQ_TEST_ELASTIC_URL is not set";
    std::random_device rd;
    index_ = "llmq-test-" + std::to_string(rd() % 1000000000u);
    admin_ = std::make_unique<ElasticClient>(config_for(url_));
  }
  void TearDown() override {
    if (admin_) admin_->request("DELETE", "/" + index_);
  }

  // Documents in the index, counted after a refresh so every stored one is visible.
  long count() {
    admin_->request("POST", "/" + index_ + "/_refresh");
    const auto r = admin_->request("GET", "/" + index_ + "/_count");
    if (r.status != 200) return -1;
    return nlohmann::json::parse(r.body)["count"].get<long>();
  }

  SpoolRecord doc(int i) const { return {index_, "req_" + std::to_string(i), {{"n", i}, {"@timestamp", "2026-01-01T00:00:00Z"}}}; }

  ElasticSinkOptions sink_options(const TempDir& dir) const {
    ElasticSinkOptions o;
    o.elastic.url = url_;
    o.elastic.connect_timeout = 500ms;
    o.elastic.request_timeout = 5000ms;
    o.spool = {dir.path() / "spool", 4096, 64u << 20};  // small segments: replay spans several
    o.dead_letter_path = dir.path() / "dead-letter.ndjson";
    o.batch_documents = 50;
    o.batch_interval = 20ms;
    o.backoff_initial = 50ms;
    o.backoff_max = 500ms;
    return o;
  }

  std::string url_;
  std::string index_;
  std::unique_ptr<ElasticClient> admin_;
};

TEST_F(ElasticIntegration, BulkCreateStoresEveryDocument) {
  ElasticClient client(config_for(url_));
  std::vector<SpoolRecord> records;
  for (int i = 0; i < 20; ++i) records.push_back(doc(i));
  const auto results = client.bulk(records);
  ASSERT_EQ(results.size(), 20u);
  for (const auto& r : results) EXPECT_EQ(r.outcome, ItemOutcome::stored) << r.reason;
  EXPECT_EQ(count(), 20);
}

TEST_F(ElasticIntegration, DuplicateIdIsStoredOnce) {
  ElasticClient client(config_for(url_));
  std::vector<SpoolRecord> records;
  for (int i = 0; i < 10; ++i) records.push_back(doc(i));
  records.push_back(doc(3));  // the same id twice in one batch
  for (const auto& r : client.bulk(records)) EXPECT_EQ(r.outcome, ItemOutcome::stored);
  const auto again = client.bulk(records);  // a whole retry: every item 409 = stored
  for (const auto& r : again) {
    EXPECT_EQ(r.outcome, ItemOutcome::stored);
    EXPECT_EQ(r.status, 409);
  }
  EXPECT_EQ(count(), 10);
}

TEST_F(ElasticIntegration, RefusedDocumentGoesToTheDeadLetterFile) {
  TempDir dir;
  {
    ElasticSink sink(sink_options(dir));
    sink.submit(index_, "good", {{"n", 1}});
    ASSERT_TRUE(sink.flush(EventSink::Clock::now() + 10s));
    sink.submit(index_, "bad", {{"n", "not a number"}});  // n is mapped as a number now
    ASSERT_TRUE(sink.flush(EventSink::Clock::now() + 10s));
    EXPECT_EQ(sink.stats().dead_lettered, 1u);
  }
  std::ifstream in(dir.path() / "dead-letter.ndjson");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const auto dead = nlohmann::json::parse(line);
  EXPECT_EQ(dead["id"], "bad");
  EXPECT_EQ(dead["status"], 400);
  EXPECT_NE(dead["reason"].get<std::string>().find("exception"), std::string::npos);
  EXPECT_EQ(count(), 1);
}

TEST_F(ElasticIntegration, SinkDeliversExactlyN) {
  TempDir dir;
  ElasticSink sink(sink_options(dir));
  for (int i = 0; i < 1000; ++i) sink.submit(index_, doc(i).id, doc(i).doc);
  ASSERT_TRUE(sink.flush(EventSink::Clock::now() + 30s));
  for (int i = 0; i < 100; ++i) sink.submit(index_, doc(i).id, doc(i).doc);  // sent again
  ASSERT_TRUE(sink.flush(EventSink::Clock::now() + 30s));
  EXPECT_EQ(count(), 1000);
  EXPECT_EQ(sink.stats().stored, 1100u);
}

TEST_F(ElasticIntegration, SpoolFromAnEarlierRunIsReplayed) {
  TempDir dir;
  {
    auto options = sink_options(dir);
    options.elastic.url = "http://127.0.0.1:1";  // Elasticsearch unreachable for this run
    ElasticSink sink(options);
    for (int i = 0; i < 200; ++i) sink.submit(index_, doc(i).id, doc(i).doc);
  }  // closed: everything is in the spool
  ElasticSink sink(sink_options(dir));
  for (int i = 200; i < 300; ++i) sink.submit(index_, doc(i).id, doc(i).doc);
  ASSERT_TRUE(sink.flush(EventSink::Clock::now() + 30s));
  EXPECT_EQ(count(), 300);
  EXPECT_TRUE(sink.spool().empty());
}

TEST_F(ElasticIntegration, NodeStoppedMidwayThenBackLosesAndDuplicatesNothing) {
  const std::string stop = env("LLMQ_TEST_ELASTIC_STOP");
  const std::string start = env("LLMQ_TEST_ELASTIC_START");
  if (stop.empty() || start.empty()) GTEST_SKIP() << "LLMQ_TEST_ELASTIC_STOP/START are not set";
  TempDir dir;
  ElasticSink sink(sink_options(dir));
  for (int i = 0; i < 300; ++i) sink.submit(index_, doc(i).id, doc(i).doc);
  ASSERT_TRUE(sink.flush(EventSink::Clock::now() + 30s));

  ASSERT_EQ(std::system(stop.c_str()), 0);
  for (int i = 300; i < 600; ++i) sink.submit(index_, doc(i).id, doc(i).doc);
  EXPECT_FALSE(sink.flush(EventSink::Clock::now() + 1s));
  EXPECT_GT(sink.spool().documents(), 0u);  // while the node is down, the disk holds them

  ASSERT_EQ(std::system(start.c_str()), 0);
  for (int i = 600; i < 700; ++i) sink.submit(index_, doc(i).id, doc(i).doc);
  ASSERT_TRUE(sink.flush(EventSink::Clock::now() + 60s));
  EXPECT_TRUE(sink.spool().empty());
  EXPECT_EQ(count(), 700);
  EXPECT_EQ(sink.stats().lost, 0u);
  EXPECT_EQ(sink.stats().dead_lettered, 0u);
}

}  // namespace
}  // namespace llmq::telemetry
