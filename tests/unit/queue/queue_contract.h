// The contract every implementation of the queue's two sides (queue/job_queue.h) passes: one
// typed test suite, instantiated per implementation with a harness that builds a queue of a
// given capacity and hands out its producer and consumer sides.
//
// A harness is a class with:
//   explicit Harness(std::int64_t capacity);
//   JobProducer& producer();
//   JobConsumer& consumer();
//   void settle();  // waits until what the producer reports (positions, depth) is current
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "queue/job_queue.h"

namespace llmq::contract {

class NullSink final : public JobSink {
 public:
  void on_event(JobEvent) override {}
};

// A job as admission makes it: a model, a prompt, a fixed seed.
inline JobPtr make_job(const std::string& id, const std::string& model = "m") {
  ValidatedRequest request;
  request.model = model;
  request.prompt_tokens = {1, 2, 3};
  request.params.sampling.seed = 7;
  return std::make_shared<Job>(id, std::move(request), std::nullopt, std::make_shared<NullSink>());
}

inline std::string popped_id(JobConsumer& consumer) {
  std::optional<JobPtr> job = consumer.pop(std::chrono::milliseconds(5000));
  return job ? (*job)->id() : std::string("(nothing)");
}

template <class Harness>
class QueueContract : public ::testing::Test {};
TYPED_TEST_SUITE_P(QueueContract);

TYPED_TEST_P(QueueContract, HandsJobsOutInArrivalOrder) {
  TypeParam q(10);
  for (const char* id : {"a", "b", "c"})
    ASSERT_EQ(q.producer().push(make_job(id)), PushResult::accepted);
  EXPECT_EQ(popped_id(q.consumer()), "a");
  EXPECT_EQ(popped_id(q.consumer()), "b");
  EXPECT_EQ(popped_id(q.consumer()), "c");
  EXPECT_FALSE(q.consumer().pop(std::chrono::milliseconds(200)).has_value());
}

TYPED_TEST_P(QueueContract, SaysFullAtCapacityAndTakesMoreOnceAJobLeft) {
  TypeParam q(2);
  EXPECT_EQ(q.producer().push(make_job("a")), PushResult::accepted);
  EXPECT_EQ(q.producer().push(make_job("b")), PushResult::accepted);
  EXPECT_EQ(q.producer().push(make_job("c")), PushResult::full);
  q.settle();
  EXPECT_EQ(q.producer().depth(), 2);
  EXPECT_EQ(q.producer().capacity(), 2);
  EXPECT_TRUE(q.producer().remove("a"));
  EXPECT_EQ(q.producer().push(make_job("c")), PushResult::accepted);
}

TYPED_TEST_P(QueueContract, PositionCountsJobsAheadAndFollowsRemovals) {
  TypeParam q(10);
  for (const char* id : {"a", "b", "c", "d"}) ASSERT_EQ(q.producer().push(make_job(id)), PushResult::accepted);
  q.settle();
  EXPECT_EQ(q.producer().position("a"), 0);
  EXPECT_EQ(q.producer().position("d"), 3);
  EXPECT_TRUE(q.producer().remove("b"));
  q.settle();
  EXPECT_EQ(q.producer().position("c"), 1);
  EXPECT_EQ(q.producer().position("d"), 2);
  EXPECT_EQ(q.producer().position("b"), std::nullopt);
  EXPECT_EQ(popped_id(q.consumer()), "a");
  q.settle();
  EXPECT_EQ(q.producer().position("c"), 0);
  EXPECT_EQ(q.producer().position("a"), std::nullopt);
  EXPECT_EQ(q.producer().depth(), 2);
}

TYPED_TEST_P(QueueContract, ARemovedJobNeverReachesAWorker) {
  TypeParam q(10);
  for (const char* id : {"a", "b"}) ASSERT_EQ(q.producer().push(make_job(id)), PushResult::accepted);
  EXPECT_TRUE(q.producer().remove("a"));
  EXPECT_FALSE(q.producer().remove("a"));
  EXPECT_EQ(popped_id(q.consumer()), "b");
  EXPECT_FALSE(q.consumer().pop(std::chrono::milliseconds(200)).has_value());
}

TYPED_TEST_P(QueueContract, RemoveOfAnUnknownOrTakenJobIsFalse) {
  TypeParam q(10);
  ASSERT_EQ(q.producer().push(make_job("a")), PushResult::accepted);
  EXPECT_FALSE(q.producer().remove("zzz"));
  EXPECT_EQ(popped_id(q.consumer()), "a");
  q.settle();
  EXPECT_FALSE(q.producer().remove("a"));
}

TYPED_TEST_P(QueueContract, AJobArrivesWhole) {
  TypeParam q(10);
  JobPtr job = make_job("whole", "other-model");
  ASSERT_EQ(q.producer().push(job), PushResult::accepted);
  std::optional<JobPtr> got = q.consumer().pop(std::chrono::milliseconds(5000));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ((*got)->id(), "whole");
  EXPECT_EQ((*got)->request().model, "other-model");
  EXPECT_EQ((*got)->request().prompt_tokens, (std::vector<Token>{1, 2, 3}));
  EXPECT_EQ((*got)->request().params.sampling.seed, 7u);
}

// The live status page's list: what waits, in the order it will run, with each job's place and
// admission time, and nothing of what it asks (WaitingJob has no prompt to leak).
TYPED_TEST_P(QueueContract, ListsWaitingJobsOldestFirstWithTheirPlaces) {
  TypeParam q(10);
  for (const char* id : {"a", "b", "c"}) ASSERT_EQ(q.producer().push(make_job(id)), PushResult::accepted);
  q.settle();
  const std::vector<WaitingJob> all = q.producer().waiting(10);
  ASSERT_EQ(all.size(), 3u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].id, std::string(1, static_cast<char>('a' + i)));
    EXPECT_EQ(all[i].model, "m");
    EXPECT_EQ(all[i].place, static_cast<std::int64_t>(i));
    if (i > 0) {
      EXPECT_LE(all[i - 1].arrived, all[i].arrived);
    }
  }
  const std::vector<WaitingJob> first_two = q.producer().waiting(2);
  ASSERT_EQ(first_two.size(), 2u);
  EXPECT_EQ(first_two[1].id, "b");
  EXPECT_EQ(popped_id(q.consumer()), "a");
  EXPECT_TRUE(q.producer().remove("c"));
  q.settle();
  const std::vector<WaitingJob> left = q.producer().waiting(10);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, "b");
  EXPECT_EQ(left[0].place, 0);
  EXPECT_TRUE(q.producer().waiting(0).empty());
}

REGISTER_TYPED_TEST_SUITE_P(QueueContract, HandsJobsOutInArrivalOrder,
                            SaysFullAtCapacityAndTakesMoreOnceAJobLeft,
                            PositionCountsJobsAheadAndFollowsRemovals,
                            ARemovedJobNeverReachesAWorker, RemoveOfAnUnknownOrTakenJobIsFalse,
                            AJobArrivesWhole, ListsWaitingJobsOldestFirstWithTheirPlaces);

}  // namespace llmq::contract
