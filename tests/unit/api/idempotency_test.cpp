#include "api/idempotency.h"

#include <gtest/gtest.h>

#include "util/sha256.h"

namespace llmq {
namespace {

// Keeps what it is sent.
struct Recorder final : JobSink {
  void on_event(JobEvent event) override { events.push_back(std::move(event)); }
  std::vector<JobEvent> events;
};

class IdempotencyTest : public testing::Test {
 protected:
  // Submits under `key`; a new job is made (and counted) when the store asks for one.
  std::variant<IdempotencyStore::Attached, IdempotencyStore::BodyMismatch, JobPtr> submit(
      IdempotencyStore& store, const std::string& key, const std::string& digest = "d") {
    return store.submit("ip:1", key, digest, [this](std::shared_ptr<Fanout> fanout) {
      ++jobs_made;
      last_fanout = fanout;
      return std::make_shared<Job>("req_" + std::to_string(jobs_made), ValidatedRequest{},
                                    std::nullopt, fanout);
    });
  }
  static void finish(Fanout& fanout, const std::string& text, int tokens) {
    fanout.on_event(StartedEvent{"w", 0, 1});
    for (int i = 0; i < tokens; ++i) fanout.on_event(TokenEvent{i, text});
    fanout.on_event(DoneEvent{"length", {}, {}});
  }

  int jobs_made = 0;
  std::shared_ptr<Fanout> last_fanout;
};

TEST_F(IdempotencyTest, ARetryAttachesToTheRunningJob) {
  IdempotencyStore store({});
  ASSERT_TRUE(std::holds_alternative<JobPtr>(submit(store, "k")));
  EXPECT_TRUE(std::holds_alternative<IdempotencyStore::Attached>(submit(store, "k")));
  EXPECT_TRUE(std::holds_alternative<IdempotencyStore::BodyMismatch>(submit(store, "k", "other")));
  EXPECT_EQ(jobs_made, 1);
}

TEST_F(IdempotencyTest, AJobEveryClientLeftIsNoAnswerARetryRunsAgain) {
  IdempotencyStore store({});
  const JobPtr first = std::get<JobPtr>(submit(store, "k"));
  first->cancel();  // what the last client's leaving does
  const auto again = submit(store, "k");
  ASSERT_TRUE(std::holds_alternative<JobPtr>(again)) << "attached to a dead job";
  EXPECT_NE(std::get<JobPtr>(again)->id(), first->id());
  EXPECT_EQ(store.size(), 1u);
}

TEST_F(IdempotencyTest, DeadJobsDoNotPileUp) {
  IdempotencyStore store({});
  for (int i = 0; i < 100; ++i) std::get<JobPtr>(submit(store, "k" + std::to_string(i)))->cancel();
  submit(store, "last");
  EXPECT_EQ(store.size(), 1u);
}

TEST_F(IdempotencyTest, AFinishedJobKeepsOnlyItsAnswer) {
  IdempotencyStore store({});
  submit(store, "k");
  finish(*last_fanout, "ab", 50);
  auto late = std::make_shared<Recorder>();
  std::get<IdempotencyStore::Attached>(submit(store, "k")).fanout->attach(late);
  ASSERT_EQ(late->events.size(), 3u);  // started, the text, done
  std::string expected;
  for (int i = 0; i < 50; ++i) expected += "ab";
  EXPECT_EQ(std::get<TokenEvent>(late->events[1]).text, expected);
  EXPECT_EQ(std::get<TokenEvent>(late->events[1]).sampled, Clock::time_point{});
  EXPECT_TRUE(std::holds_alternative<DoneEvent>(late->events[2]));
}

TEST_F(IdempotencyTest, AFinishedJobOfNChoicesKeepsEachChoicesText) {
  IdempotencyStore store({});
  submit(store, "k");
  last_fanout->on_event(StartedEvent{"w", 0, 1});
  for (int i = 0; i < 3; ++i) {
    last_fanout->on_event(TokenEvent{i, "a", {}, {}, 0});
    last_fanout->on_event(TokenEvent{i, "b", {}, {}, 1});
  }
  last_fanout->on_event(DoneEvent{"length", {}, {}, {"length", "stop"}});
  auto late = std::make_shared<Recorder>();
  std::get<IdempotencyStore::Attached>(submit(store, "k")).fanout->attach(late);
  ASSERT_EQ(late->events.size(), 4u);  // started, choice 0's text, choice 1's, done
  EXPECT_EQ(std::get<TokenEvent>(late->events[1]).text, "aaa");
  EXPECT_EQ(std::get<TokenEvent>(late->events[1]).choice, 0);
  EXPECT_EQ(std::get<TokenEvent>(late->events[2]).text, "bbb");
  EXPECT_EQ(std::get<TokenEvent>(late->events[2]).choice, 1);
}

TEST_F(IdempotencyTest, KeptAnswersAreCappedByBytesOldestFirst) {
  IdempotencyStore store({.ttl = std::chrono::seconds(600), .max_entries = 1000, .max_bytes = 4096});
  for (int i = 0; i < 10; ++i) {
    submit(store, "k" + std::to_string(i));
    finish(*last_fanout, std::string(1000, 'x'), 1);  // ~1 KiB kept each
  }
  submit(store, "next");
  EXPECT_LE(store.size(), 5u);
  EXPECT_GE(store.size(), 2u);
  // The newest finished answer is still there; the oldest is not.
  EXPECT_TRUE(std::holds_alternative<IdempotencyStore::Attached>(submit(store, "k9")));
  const int made = jobs_made;
  EXPECT_TRUE(std::holds_alternative<JobPtr>(submit(store, "k0")));
  EXPECT_EQ(jobs_made, made + 1);
}

TEST(RequestDigest, IsSha256OfRouteAndBody) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(request_digest("/api/v1/req", "{}"), sha256_hex("/api/v1/req\n{}"));
  EXPECT_NE(request_digest("/api/v1/req", "{}"), request_digest("/v1/completions", "{}"));
}

}  // namespace
}  // namespace llmq
