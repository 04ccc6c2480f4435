// The write-ahead journal, the per-reason refusal documents, the dead-letter file's cap, and a
// spool whose owner rolls its segments.
#include "telemetry/journal.h"

#include <gtest/gtest.h>

#include <fstream>

#include "telemetry/dead_letter.h"
#include "telemetry/refusal_documents.h"
#include "telemetry/spool.h"
#include "temp_dir.h"

namespace llmq::telemetry {
namespace {

SpoolRecord doc(int i) {
  return {"logs-llmq.requests-default", "req_" + std::to_string(i), {{"n", i}}};
}

TEST(Journal, WhatAKilledProcessHeldIsThereAtTheNextStart) {
  TempDir dir;
  {
    Journal journal(dir.path());
    for (int i = 0; i < 5; ++i) journal.append(doc(i));
    journal.rotate();
    journal.append(doc(5));
    // No settlement and no clean end: as after SIGKILL, the files stay (the destructor keeps
    // what is unsettled).
  }
  Journal next(dir.path());
  const auto left = next.leftovers();
  ASSERT_EQ(left.size(), 6u);
  EXPECT_EQ(left.front().id, "req_0");
  EXPECT_EQ(left.back().id, "req_5");
  next.drop_leftovers();
  EXPECT_EQ(next.files(), 0u);
  EXPECT_TRUE(Journal(dir.path()).leftovers().empty());
}

TEST(Journal, SettledFilesAreDeletedOnRotation) {
  TempDir dir;
  Journal journal(dir.path());
  const auto a = journal.append(doc(1));
  const auto b = journal.append(doc(2));
  ASSERT_EQ(a, b);
  journal.rotate();  // closes the file: it has two outstanding records
  EXPECT_EQ(journal.files(), 1u);
  journal.settled(a);
  journal.rotate();
  EXPECT_EQ(journal.files(), 1u) << "one record still unsettled";
  journal.settled(b);
  journal.rotate();
  EXPECT_EQ(journal.files(), 0u);
  const auto c = journal.append(doc(3));
  EXPECT_NE(c, a) << "a new file after a rotation";
}

TEST(Journal, ATornLastLineIsSkipped) {
  TempDir dir;
  {
    Journal journal(dir.path());
    journal.append(doc(1));
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    std::ofstream(entry.path(), std::ios::app) << R"({"stream":"x","id":"req_2","doc":{"n")";
  }
  EXPECT_EQ(Journal(dir.path()).leftovers().size(), 1u);
}

TEST(RefusalDocuments, ABurstThenTheRateAndTheCountOfWhatWasLeftOut) {
  RefusalDocuments refusals({.rate = 10, .burst = 3});
  const auto t0 = RefusalDocuments::Clock::now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(refusals.admit("invalid", t0), 0u);
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(refusals.admit("invalid", t0));
  EXPECT_EQ(refusals.admit("unauthorized", t0), 0u) << "each reason has its own bucket";
  EXPECT_EQ(refusals.admit("invalid", t0 + std::chrono::milliseconds(100)), 7u)
      << "the next document carries the refusals left out before it";
  EXPECT_EQ(refusals.omitted_total(), 7u);
}

TEST(DeadLetterFile, PastItsCapItIsSetAsideNotGrown) {
  TempDir dir;
  const auto path = dir.path() / "dead-letter.ndjson";
  DeadLetterFile file(path, 4096);
  SpoolRecord big = doc(1);
  big.doc["pad"] = std::string(1000, 'x');
  for (int i = 0; i < 20; ++i) file.write(big, 400, "mapper_parsing_exception");
  EXPECT_LE(std::filesystem::file_size(path), 4096u);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "dead-letter.ndjson.1"));
  EXPECT_GE(file.rotated(), 4u);
  EXPECT_EQ(file.written(), 20u);
}

TEST(Spool, AnOwnerRolledSpoolNeverRollsInAppend) {
  TempDir dir;
  Spool spool({.dir = dir.path(), .segment_bytes = 256, .max_bytes = 1 << 20, .roll_in_append = false});
  for (int i = 0; i < 20; ++i) spool.append(doc(i));
  EXPECT_EQ(spool.segment_count(), 1u) << "append only writes";
  EXPECT_FALSE(spool.oldest_sealed());
  spool.maintain();  // rolls the full segment, opens the next
  ASSERT_TRUE(spool.oldest_sealed());
  EXPECT_EQ(spool.read(*spool.oldest_sealed()).size(), 20u);
  spool.append(doc(20));
  EXPECT_EQ(spool.documents(), 21u);
}

}  // namespace
}  // namespace llmq::telemetry
