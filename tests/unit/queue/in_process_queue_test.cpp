#include "queue/in_process_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace llmq {
namespace {

class NullSink final : public JobSink {
 public:
  void on_event(JobEvent) override {}
};

JobPtr make_job(const std::string& id) {
  return std::make_shared<Job>(id, ValidatedRequest{}, std::nullopt, std::make_shared<NullSink>());
}

using std::chrono::milliseconds;

TEST(InProcessQueue, PopsInArrivalOrder) {
  InProcessQueue q(10);
  for (const char* id : {"a", "b", "c"}) ASSERT_EQ(q.push(make_job(id)), PushResult::accepted);
  EXPECT_EQ((*q.pop(milliseconds(0)))->id(), "a");
  EXPECT_EQ((*q.pop(milliseconds(0)))->id(), "b");
  EXPECT_EQ((*q.pop(milliseconds(0)))->id(), "c");
  EXPECT_FALSE(q.pop(milliseconds(0)).has_value());
}

TEST(InProcessQueue, RefusesAtCapacity) {
  InProcessQueue q(2);
  EXPECT_EQ(q.push(make_job("a")), PushResult::accepted);
  EXPECT_EQ(q.push(make_job("b")), PushResult::accepted);
  EXPECT_EQ(q.push(make_job("c")), PushResult::full);
  EXPECT_EQ(q.depth(), 2);
  q.pop(milliseconds(0));
  EXPECT_EQ(q.push(make_job("c")), PushResult::accepted);
}

TEST(InProcessQueue, ZeroCapacityRefusesEverything) {
  InProcessQueue q(0);
  EXPECT_EQ(q.push(make_job("a")), PushResult::full);
}

TEST(InProcessQueue, PositionCountsJobsAheadAndFollowsRemovals) {
  InProcessQueue q(10);
  for (const char* id : {"a", "b", "c", "d"}) q.push(make_job(id));
  EXPECT_EQ(q.position("a"), 0);
  EXPECT_EQ(q.position("d"), 3);
  EXPECT_TRUE(q.remove("b"));
  EXPECT_EQ(q.position("c"), 1);
  EXPECT_EQ(q.position("d"), 2);
  q.pop(milliseconds(0));  // a
  EXPECT_EQ(q.position("c"), 0);
  EXPECT_EQ(q.position("a"), std::nullopt);
  EXPECT_EQ(q.position("b"), std::nullopt);
}

TEST(InProcessQueue, RemoveOfUnknownOrTakenJobIsFalse) {
  InProcessQueue q(10);
  q.push(make_job("a"));
  EXPECT_FALSE(q.remove("zzz"));
  q.pop(milliseconds(0));
  EXPECT_FALSE(q.remove("a"));
}

TEST(InProcessQueue, PopWaitsForAPush) {
  InProcessQueue q(10);
  std::jthread producer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    q.push(make_job("late"));
  });
  auto job = q.pop(std::chrono::seconds(5));
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ((*job)->id(), "late");
}

TEST(InProcessQueue, CloseRefusesPushesWakesPoppersAndKeepsWaitingJobs) {
  InProcessQueue q(10);
  q.push(make_job("a"));
  q.close();
  EXPECT_EQ(q.push(make_job("b")), PushResult::closed);
  EXPECT_EQ((*q.pop(milliseconds(0)))->id(), "a");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.pop(std::chrono::seconds(5)).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(InProcessQueue, ConcurrentProducersAndConsumersLoseNothing) {
  InProcessQueue q(100000);
  constexpr int kPerProducer = 2000;
  std::atomic<int> popped{0};
  {
    std::vector<std::jthread> threads;
    for (int p = 0; p < 3; ++p) {
      threads.emplace_back([&q, p] {
        for (int i = 0; i < kPerProducer; ++i) {
          const std::string id = std::to_string(p) + "-" + std::to_string(i);
          q.push(make_job(id));
          if (i % 7 == 0) q.position(id);
        }
      });
    }
    for (int c = 0; c < 2; ++c) {
      threads.emplace_back([&] {
        while (popped.load() < 3 * kPerProducer) {
          if (q.pop(milliseconds(10))) popped.fetch_add(1);
        }
      });
    }
  }
  EXPECT_EQ(popped.load(), 3 * kPerProducer);
  EXPECT_EQ(q.depth(), 0);
}

}  // namespace
}  // namespace llmq
