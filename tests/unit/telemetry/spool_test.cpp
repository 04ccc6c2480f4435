#include "telemetry/spool.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "telemetry/temp_dir.h"

namespace llmq::telemetry {
namespace {

SpoolRecord record(int i) {
  return SpoolRecord{"logs-llmq.requests-default", "req_" + std::to_string(i),
                     {{"n", i}, {"text", std::string(40, 'x')}}};
}

// Every record of every sealed segment, oldest first, removing each segment once read.
std::vector<std::string> drain_ids(Spool& spool) {
  std::vector<std::string> ids;
  spool.seal();
  while (auto seq = spool.oldest_sealed()) {
    for (auto& r : spool.read(*seq)) ids.push_back(r.id);
    spool.remove(*seq);
  }
  return ids;
}

std::vector<std::string> expected_ids(int from, int to) {
  std::vector<std::string> ids;
  for (int i = from; i < to; ++i) ids.push_back("req_" + std::to_string(i));
  return ids;
}

TEST(Spool, ReadsBackInOrderAcrossSegments) {
  TempDir dir;
  Spool spool({dir.path(), /*segment_bytes=*/1000, /*max_bytes=*/1 << 20});
  for (int i = 0; i < 100; ++i) spool.append(record(i));
  EXPECT_GT(spool.segment_count(), 5u);  // ~100 bytes a line: rolled about every 10 records
  EXPECT_EQ(spool.documents(), 100u);
  EXPECT_EQ(drain_ids(spool), expected_ids(0, 100));
  EXPECT_TRUE(spool.empty());
  EXPECT_EQ(spool.dropped_documents(), 0u);
}

TEST(Spool, KeepsTheDocumentAndItsFields) {
  TempDir dir;
  Spool spool({dir.path()});
  spool.append(SpoolRecord{"s", "id-1", {{"a", {{"b", 2}}}, {"t", "é \"q\"\n"}}});
  spool.seal();
  const auto records = spool.read(*spool.oldest_sealed());
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].stream, "s");
  EXPECT_EQ(records[0].id, "id-1");
  EXPECT_EQ(records[0].doc["a"]["b"], 2);
  EXPECT_EQ(records[0].doc["t"], "é \"q\"\n");
}

TEST(Spool, OpenSegmentIsNotReadable) {
  TempDir dir;
  Spool spool({dir.path()});
  spool.append(record(1));
  EXPECT_FALSE(spool.oldest_sealed());
  EXPECT_FALSE(spool.empty());
  spool.seal();
  EXPECT_TRUE(spool.oldest_sealed());
}

TEST(Spool, CapDropsOldestSegmentsAndCountsTheirDocuments) {
  TempDir dir;
  Spool spool({dir.path(), /*segment_bytes=*/1000, /*max_bytes=*/3000});
  for (int i = 0; i < 100; ++i) spool.append(record(i));
  EXPECT_LE(spool.bytes(), 3000u);
  EXPECT_GT(spool.dropped_documents(), 0u);
  const auto ids = drain_ids(spool);
  // What is left is the newest records, in order, and nothing is both kept and counted dropped.
  EXPECT_EQ(ids.size() + spool.dropped_documents(), 100u);
  EXPECT_EQ(ids, expected_ids(100 - static_cast<int>(ids.size()), 100));
}

TEST(Spool, ReopenContinuesAfterTheExistingSegments) {
  TempDir dir;
  {
    Spool spool({dir.path(), 1000, 1 << 20});
    for (int i = 0; i < 25; ++i) spool.append(record(i));
  }
  Spool spool({dir.path(), 1000, 1 << 20});
  EXPECT_EQ(spool.documents(), 25u);
  for (int i = 25; i < 50; ++i) spool.append(record(i));
  EXPECT_EQ(drain_ids(spool), expected_ids(0, 50));
}

TEST(Spool, RemovedSegmentsStayRemovedAfterReopen) {
  TempDir dir;
  {
    Spool spool({dir.path(), 1000, 1 << 20});
    for (int i = 0; i < 30; ++i) spool.append(record(i));
    spool.seal();
    spool.remove(*spool.oldest_sealed());
  }
  Spool spool({dir.path(), 1000, 1 << 20});
  const auto ids = drain_ids(spool);
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), "req_0");
  EXPECT_EQ(ids.back(), "req_29");
}

TEST(Spool, TornLastLineIsSkippedAndCounted) {
  TempDir dir;
  {
    Spool spool({dir.path()});
    for (int i = 0; i < 3; ++i) spool.append(record(i));
  }
  // A crash in the middle of a write: half a line, no newline.
  std::string name;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) name = e.path().string();
  std::ofstream(name, std::ios::app) << R"({"stream":"s","id":"req_3","doc":{"n":)";

  Spool spool({dir.path()});
  EXPECT_EQ(spool.skipped_lines(), 1u);
  EXPECT_EQ(spool.documents(), 3u);
  spool.append(record(4));  // goes to a new segment, never after the torn line
  EXPECT_EQ(drain_ids(spool), (std::vector<std::string>{"req_0", "req_1", "req_2", "req_4"}));
}

TEST(Spool, IgnoresForeignFiles) {
  TempDir dir;
  std::ofstream(dir.path() / "notes.txt") << "hello\n";
  Spool spool({dir.path()});
  EXPECT_TRUE(spool.empty());
  EXPECT_EQ(spool.segment_count(), 0u);
}

TEST(Spool, ConcurrentAppendsAllArrive) {
  TempDir dir;
  Spool spool({dir.path(), 4000, 1 << 24});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&spool, t] {
      for (int i = 0; i < 250; ++i) spool.append(record(t * 1000 + i));
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(drain_ids(spool).size(), 1000u);
}

}  // namespace
}  // namespace llmq::telemetry
