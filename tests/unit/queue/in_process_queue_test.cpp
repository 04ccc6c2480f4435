#include "queue/in_process_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "queue_contract.h"

namespace llmq {
namespace {

using contract::make_job;
using std::chrono::milliseconds;

// Both sides are one object; what it reports is current at once.
class InProcessHarness {
 public:
  explicit InProcessHarness(std::int64_t capacity) : queue_(capacity) {}
  JobProducer& producer() { return queue_; }
  JobConsumer& consumer() { return queue_; }
  void settle() {}

 private:
  InProcessQueue queue_;
};

}  // namespace

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(InProcess, QueueContract, InProcessHarness);
}  // namespace contract

namespace {

TEST(InProcessQueue, ZeroCapacityRefusesEverything) {
  InProcessQueue q(0);
  EXPECT_EQ(q.push(make_job("a")), PushResult::full);
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

TEST(InProcessQueue, ForEachWaitingVisitsWaitingJobsOldestFirst) {
  InProcessQueue q(10);
  for (const char* id : {"a", "b", "c"}) q.push(make_job(id));
  q.remove("b");
  std::vector<std::string> seen;
  q.for_each_waiting([&](const JobPtr& job) { seen.push_back(job->id()); });
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(q.depth(), 2);
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
