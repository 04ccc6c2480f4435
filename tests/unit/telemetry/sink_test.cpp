// The sinks without an Elasticsearch: SpoolSink, and ElasticSink while its node is unreachable.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "telemetry/elastic_sink.h"
#include "telemetry/sink_metrics.h"
#include "telemetry/spool_sink.h"
#include "telemetry/temp_dir.h"

namespace llmq::telemetry {
namespace {

using namespace std::chrono_literals;

std::uint64_t spooled_on_disk(const std::filesystem::path& dir) {
  Spool reopened({dir});
  return reopened.documents();
}

TEST(Spool, OneProcessPerDirectory) {
  TempDir dir;
  Spool first({dir.path()});
  EXPECT_THROW(Spool second({dir.path()}), std::runtime_error);
}

TEST(Spool, TheDirectoryIsFreeAgainOnceItsSpoolIsGone) {
  TempDir dir;
  { Spool first({dir.path()}); }
  EXPECT_NO_THROW(Spool second({dir.path()}));
}

TEST(SpoolSink, KeepsEveryDocumentOnDisk) {
  TempDir dir;
  {
    SpoolSink sink({dir.path()});
    for (int i = 0; i < 20; ++i) sink.submit("logs-llmq.requests-default", "req_" + std::to_string(i), {{"n", i}});
    EXPECT_TRUE(sink.flush(EventSink::Clock::now() + 1s));
    sink.close();
  }
  EXPECT_EQ(spooled_on_disk(dir.path()), 20u);
}

ElasticSinkOptions unreachable(const TempDir& dir) {
  ElasticSinkOptions o;
  o.elastic.url = "http://127.0.0.1:1";  // nothing listens on port 1
  o.elastic.connect_timeout = 200ms;
  o.spool.dir = dir.path() / "spool";
  o.dead_letter_path = dir.path() / "dead-letter.ndjson";
  o.queue_cap = 10;
  o.batch_documents = 5;
  o.batch_interval = 20ms;
  o.backoff_initial = 20ms;
  o.backoff_max = 100ms;
  return o;
}

TEST(ElasticSink, UnreachableNodeSpoolsEverythingAndLosesNothing) {
  TempDir dir;
  ElasticSinkStats stats;
  {
    ElasticSink sink(unreachable(dir));
    for (int i = 0; i < 100; ++i) sink.submit("s", "req_" + std::to_string(i), {{"n", i}});
    EXPECT_FALSE(sink.flush(EventSink::Clock::now() + 300ms));  // nothing can be acknowledged
    sink.close();
    stats = sink.stats();
  }
  EXPECT_EQ(stats.stored, 0u);
  EXPECT_EQ(stats.lost, 0u);
  EXPECT_EQ(stats.dead_lettered, 0u);
  EXPECT_GE(stats.failed_batches, 1u);
  EXPECT_EQ(spooled_on_disk(dir.path() / "spool"), 100u);
}

TEST(ElasticSink, SubmitNeverWaitsOnTheNetwork) {
  TempDir dir;
  {
    ElasticSink sink(unreachable(dir));
    const auto start = EventSink::Clock::now();
    for (int i = 0; i < 500; ++i) sink.submit("s", "req_" + std::to_string(i), {{"n", i}});
    EXPECT_LT(EventSink::Clock::now() - start, 1000ms);
    sink.close();
    EXPECT_EQ(sink.stats().lost, 0u);
    EXPECT_EQ(sink.stats().dead_lettered, 0u);
  }  // the sink's spool lock is released here
  EXPECT_EQ(spooled_on_disk(dir.path() / "spool"), 500u);
}

}  // namespace
}  // namespace llmq::telemetry

namespace llmq::telemetry {
namespace {

TEST(SinkMetrics, AnUnreachableNodeShowsAsSpooledDocumentsAndFailedBatches) {
  TempDir dir;
  ElasticSink sink(unreachable(dir));
  const auto collector = sink_collector(sink);
  for (int i = 0; i < 20; ++i) sink.submit("logs-llmq.requests-default", "req_" + std::to_string(i), {{"n", i}});
  EXPECT_FALSE(sink.flush(EventSink::Clock::now() + 500ms));
  std::string out;
  collector->collect(out);
  EXPECT_NE(out.find("\nllmq_spool_documents 20\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nllmq_elastic_documents_total{outcome=\"stored\"} 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nllmq_elastic_spooled_documents_total 20\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("\nllmq_elastic_failed_batches_total 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("# TYPE llmq_elastic_failed_batches_total counter\n"), std::string::npos) << out;
  sink.close();
}

TEST(SinkMetrics, WithoutElasticsearchOnlyTheSpoolIsReported) {
  TempDir dir;
  SpoolSink sink({dir.path()});
  sink.submit("logs-llmq.requests-default", "req_1", {{"n", 1}});
  std::string out;
  sink_collector(sink)->collect(out);
  EXPECT_NE(out.find("\nllmq_spool_documents 1\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("llmq_elastic_"), std::string::npos) << out;
  sink.close();
}

// The niceness of the thread of this process named `name` (field 19 of its stat), or nullopt.
std::optional<int> nice_of_thread(const std::string& name) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (!std::getline(comm, line) || line != name) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
    std::string field;
    for (int i = 3; i <= 19 && fields >> field; ++i) {
    }
    return std::stoi(field);
  }
  return std::nullopt;
}

TEST(ElasticSink, ShipsFromABackgroundThreadThatYieldsTheCpu) {
  const int own = getpriority(PRIO_PROCESS, 0);  // a thread may only lower its own priority
  if (own >= 19) GTEST_SKIP() << "the tests run at nice 19 already";
  const int lower = std::min(19, own + 7);
  TempDir dir;
  ElasticSinkOptions options = unreachable(dir);
  options.nice = lower;
  ElasticSink sink(std::move(options));
  std::optional<int> nice;
  for (int i = 0; i < 200 && nice != lower; ++i) {
    std::this_thread::sleep_for(5ms);
    nice = nice_of_thread("llmq-ship");
  }
  EXPECT_EQ(nice, lower);
  sink.close();
}

TEST(DeadLetterFile, OneLinePerDocumentWithTheReason) {
  TempDir dir;
  DeadLetterFile file(dir.path() / "sub" / "dead-letter.ndjson");
  file.write({"s", "req_1", {{"n", "x"}}}, 400, "document_parsing_exception: n");
  file.write({"s", "req_2", {{"n", "y"}}}, 400, "again");
  EXPECT_EQ(file.written(), 2u);
  std::ifstream in(dir.path() / "sub" / "dead-letter.ndjson");
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["id"], "req_1");
  EXPECT_EQ(lines[0]["stream"], "s");
  EXPECT_EQ(lines[0]["status"], 400);
  EXPECT_EQ(lines[0]["reason"], "document_parsing_exception: n");
  EXPECT_EQ(lines[0]["doc"]["n"], "x");
  EXPECT_TRUE(lines[0]["time_ms"].is_number());
}

}  // namespace
}  // namespace llmq::telemetry
