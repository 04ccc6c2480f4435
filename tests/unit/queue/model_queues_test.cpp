// ModelQueues: the contract every queue passes, and what is its own: one capacity shared by the
// models' partitions, positions within a model's partition.
#include "queue/model_queues.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "queue_contract.h"

namespace llmq {
namespace {

using contract::make_job;
using std::chrono::milliseconds;

// Takes the next job from any partition, turn by turn, as a set of schedulers would together.
class RoundRobinConsumer final : public JobConsumer {
 public:
  explicit RoundRobinConsumer(ModelQueues& queues) : queues_(queues) {}

  std::optional<JobPtr> pop(milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    const std::vector<std::string>& models = queues_.models();
    for (;;) {
      for (std::size_t i = 0; i < models.size(); ++i) {
        const std::size_t at = (next_ + i) % models.size();
        if (std::optional<JobPtr> job = queues_.partition(models[at]).pop(milliseconds(0))) {
          next_ = at + 1;
          return job;
        }
      }
      if (Clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(milliseconds(1));
    }
  }

 private:
  ModelQueues& queues_;
  std::size_t next_ = 0;  // the partition to look at first next time
};

// The contract's jobs are for model "m" (one for "other-model"): both are served.
class ModelQueuesHarness {
 public:
  explicit ModelQueuesHarness(std::int64_t capacity)
      : queues_({"m", "other-model"}, capacity), consumer_(queues_) {}
  JobProducer& producer() { return queues_; }
  JobConsumer& consumer() { return consumer_; }
  void settle() {}

 private:
  ModelQueues queues_;
  RoundRobinConsumer consumer_;
};

}  // namespace

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(ModelQueues, QueueContract, ModelQueuesHarness);
}  // namespace contract

namespace {

TEST(ModelQueues, OneCapacityOverEveryModel) {
  ModelQueues q({"a", "b"}, 3);
  EXPECT_EQ(q.push(make_job("1", "a")), PushResult::accepted);
  EXPECT_EQ(q.push(make_job("2", "b")), PushResult::accepted);
  EXPECT_EQ(q.push(make_job("3", "a")), PushResult::accepted);
  EXPECT_EQ(q.push(make_job("4", "b")), PushResult::full);
  EXPECT_EQ(q.push(make_job("5", "a")), PushResult::full);
  EXPECT_EQ(q.depth(), 3);
  ASSERT_TRUE(q.partition("a").pop(milliseconds(0)).has_value());  // a worker took one
  EXPECT_EQ(q.push(make_job("6", "b")), PushResult::accepted);
  EXPECT_EQ(q.partition("a").depth(), 1);
  EXPECT_EQ(q.partition("b").depth(), 2);
}

TEST(ModelQueues, PositionCountsOnlyTheJobsOfTheSameModel) {
  ModelQueues q({"a", "b"}, 10);
  using IdModel = std::pair<const char*, const char*>;
  for (auto [id, model] : std::initializer_list<IdModel>{
           {"a1", "a"}, {"b1", "b"}, {"a2", "a"}, {"b2", "b"}, {"a3", "a"}})
    ASSERT_EQ(q.push(make_job(id, model)), PushResult::accepted);
  EXPECT_EQ(q.position("a1"), 0);
  EXPECT_EQ(q.position("a3"), 2);
  EXPECT_EQ(q.position("b1"), 0);
  EXPECT_EQ(q.position("b2"), 1);
  EXPECT_EQ(q.depth(), 5);
  EXPECT_TRUE(q.remove("a2"));  // found in whichever partition holds it
  EXPECT_TRUE(q.remove("b1"));
  EXPECT_FALSE(q.remove("b1"));
  EXPECT_EQ(q.position("a3"), 1);
  EXPECT_EQ(q.position("b2"), 0);
  EXPECT_EQ(q.depth(), 3);
}

TEST(ModelQueues, AJobGoesToItsModelsPartition) {
  ModelQueues q({"a", "b"}, 10);
  q.push(make_job("x", "b"));
  EXPECT_FALSE(q.partition("a").pop(milliseconds(0)).has_value());
  EXPECT_EQ((*q.partition("b").pop(milliseconds(0)))->id(), "x");
  EXPECT_THROW(q.push(make_job("y", "c")), std::invalid_argument);
  EXPECT_THROW(q.partition("c"), std::out_of_range);
}

TEST(ModelQueues, ConcurrentPushesNeverPassTheCapacity) {
  ModelQueues q({"a", "b", "c"}, 50);
  std::atomic<int> accepted{0};
  {
    std::vector<std::jthread> threads;
    for (const char* model : {"a", "b", "c"}) {
      threads.emplace_back([&, model] {
        for (int i = 0; i < 200; ++i) {
          const std::string id = std::string(model) + std::to_string(i);
          if (q.push(make_job(id, model)) == PushResult::accepted) accepted.fetch_add(1);
        }
      });
    }
  }
  EXPECT_EQ(accepted.load(), 50);
  EXPECT_EQ(q.depth(), 50);
}

TEST(ModelQueues, CloseRefusesPushesAndDrainTakesEveryWaitingJob) {
  std::vector<std::string> pushed_to;
  ModelQueues q({"a", "b"}, 10, [&](const std::string& model) { pushed_to.push_back(model); });
  q.push(make_job("1", "a"));
  q.push(make_job("2", "b"));
  q.push(make_job("3", "a"));
  EXPECT_EQ(pushed_to, (std::vector<std::string>{"a", "b", "a"}));
  q.close();
  EXPECT_EQ(q.push(make_job("4", "b")), PushResult::closed);
  std::vector<std::string> drained;
  for (const JobPtr& job : q.drain()) drained.push_back(job->id());
  EXPECT_EQ(drained, (std::vector<std::string>{"1", "3", "2"}));
  EXPECT_EQ(q.depth(), 0);
  // Closed partitions wake their poppers at once.
  const auto start = Clock::now();
  EXPECT_FALSE(q.partition("a").pop(std::chrono::seconds(5)).has_value());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
}

TEST(ModelQueues, RefusesNoModelOrTheSameTwice) {
  EXPECT_THROW(ModelQueues({}, 1), std::invalid_argument);
  EXPECT_THROW(ModelQueues({"a", "a"}, 1), std::invalid_argument);
}

}  // namespace
}  // namespace llmq
