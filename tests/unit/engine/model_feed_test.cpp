// ModelFeed: counts what it hands out, keeps the last job's keep_alive, and hands out nothing
// while paused or closed.
#include "engine/model_feed.h"

#include <gtest/gtest.h>

#include <thread>

#include "queue/queue_contract.h"

namespace llmq {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

JobPtr job_with(const std::string& id, std::optional<std::int64_t> keep_alive_ms) {
  JobPtr job = contract::make_job(id);
  ValidatedRequest request = job->request();
  request.params.keep_alive_ms = keep_alive_ms;
  return std::make_shared<Job>(id, std::move(request), std::nullopt,
                               std::make_shared<contract::NullSink>());
}

TEST(ModelFeed, CountsJobsAndKeepsTheLastOnesKeepAlive) {
  InProcessQueue inbox(10);
  ModelFeed feed(inbox, 300000ms);
  EXPECT_EQ(feed.keep_alive(), 300000ms);
  inbox.push(job_with("a", 0));
  inbox.push(job_with("b", std::nullopt));
  ASSERT_TRUE(feed.pop(0ms).has_value());
  EXPECT_EQ(feed.keep_alive(), 0ms);
  ASSERT_TRUE(feed.pop(0ms).has_value());
  EXPECT_EQ(feed.keep_alive(), 300000ms);  // no keep_alive: the default again
  EXPECT_EQ(feed.popped(), 2u);
  EXPECT_FALSE(feed.pop(20ms).has_value());
  EXPECT_EQ(feed.popped(), 2u);
}

TEST(ModelFeed, PausedItHandsOutNothingUntilResumed) {
  InProcessQueue inbox(10);
  ModelFeed feed(inbox, 1000ms);
  std::optional<JobPtr> got;
  std::jthread scheduler([&] { got = feed.pop(5000ms); });  // waits on the empty inbox
  std::this_thread::sleep_for(20ms);
  feed.pause();  // returns once that pop is not inside the inbox
  inbox.push(contract::make_job("x"));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(inbox.depth(), 1);
  EXPECT_EQ(feed.popped(), 0u);
  feed.resume();
  scheduler.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ((*got)->id(), "x");
  EXPECT_EQ(feed.popped(), 1u);
}

TEST(ModelFeed, ClosedItReturnsAtOnce) {
  InProcessQueue inbox(10);
  ModelFeed feed(inbox, 1000ms);
  inbox.push(contract::make_job("x"));
  feed.close();
  const auto start = Clock::now();
  EXPECT_FALSE(feed.pop(5000ms).has_value());
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_EQ(inbox.depth(), 1);  // left for whoever drains the inbox
}

}  // namespace
}  // namespace llmq
