// Admission: per-client concurrency and rate, the predicted-wait refusal, Retry-After pricing,
// and the bound on what it remembers.
#include "api/admission.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace llmq {
namespace {

using namespace std::chrono_literals;

bool admitted(const std::variant<Admission::Ticket, Refusal>& d) {
  return std::holds_alternative<Admission::Ticket>(d);
}

TEST(Admission, NoLimitsAdmitsEveryoneAndRemembersNoOne) {
  Admission a({.slots = 2});
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(admitted(a.admit_client("ip:" + std::to_string(i), std::nullopt)));
  EXPECT_EQ(a.tracked_clients(), 0u);
}

TEST(Admission, ConcurrencyLimitPerClientAndTicketsRelease) {
  Admission a({.slots = 2, .client = {.max_concurrent = 2}});
  auto t1 = a.admit_client("ip:a", std::nullopt);
  auto t2 = a.admit_client("ip:a", std::nullopt);
  ASSERT_TRUE(admitted(t1) && admitted(t2));
  const auto third = a.admit_client("ip:a", std::nullopt);
  ASSERT_FALSE(admitted(third));
  EXPECT_EQ(std::get<Refusal>(third).code, "rate_limited");
  EXPECT_GE(std::get<Refusal>(third).retry_after_s, 1);
  EXPECT_TRUE(admitted(a.admit_client("ip:b", std::nullopt))) << "another client is not limited";
  t1 = std::variant<Admission::Ticket, Refusal>{};  // the first request ends
  EXPECT_TRUE(admitted(a.admit_client("ip:a", std::nullopt)));
}

TEST(Admission, TokenBucketRateWithBurst) {
  Admission a({.slots = 1, .client = {.rate = 1, .burst = 3}});
  std::vector<std::variant<Admission::Ticket, Refusal>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(a.admit_client("k", std::nullopt));
    EXPECT_TRUE(admitted(held.back())) << i;
  }
  const auto over = a.admit_client("k", std::nullopt);
  ASSERT_FALSE(admitted(over));
  EXPECT_EQ(std::get<Refusal>(over).code, "rate_limited");
  EXPECT_EQ(std::get<Refusal>(over).retry_after_s, 1);
  std::this_thread::sleep_for(1100ms);  // one token back
  EXPECT_TRUE(admitted(a.admit_client("k", std::nullopt)));
  EXPECT_FALSE(admitted(a.admit_client("k", std::nullopt)));
}

TEST(Admission, OwnLimitsOverrideTheDefault) {
  Admission a({.slots = 1, .client = {.max_concurrent = 1}});
  auto t1 = a.admit_client("key:big", ClientLimits{.max_concurrent = 3});
  auto t2 = a.admit_client("key:big", ClientLimits{.max_concurrent = 3});
  EXPECT_TRUE(admitted(t1) && admitted(t2));
  auto u1 = a.admit_client("key:small", std::nullopt);
  EXPECT_TRUE(admitted(u1));
  EXPECT_FALSE(admitted(a.admit_client("key:small", std::nullopt)));
}

TEST(Admission, NoPredictionBeforeJobsFinished) {
  Admission a({.slots = 2});
  EXPECT_EQ(a.predicted_wait(10), std::nullopt);
  EXPECT_EQ(a.check_wait(1000, 1ms), std::nullopt) << "no estimate: never refuse on a guess";
  a.job_done(1000ms);
  a.job_done(1000ms);
  EXPECT_EQ(a.predicted_wait(10), std::nullopt);
}

TEST(Admission, PredictedWaitIsJobsAheadTimesServiceOverSlots) {
  Admission a({.slots = 2});
  for (int i = 0; i < 4; ++i) a.job_done(1000ms);
  EXPECT_EQ(a.predicted_wait(6), 3000ms);
  EXPECT_EQ(a.check_wait(6, 3000ms), std::nullopt);
  EXPECT_EQ(a.check_wait(0, 1ms), std::nullopt) << "nothing ahead: no wait";
  EXPECT_EQ(a.check_wait(6, std::nullopt), std::nullopt) << "no deadline";
  const auto refusal = a.check_wait(6, 1000ms);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->status, 429);
  EXPECT_EQ(refusal->code, "deadline");
  EXPECT_EQ(refusal->retry_after_s, 2) << "the wait beyond the deadline";
}

TEST(Admission, ServiceTimeFollowsRecentJobs) {
  Admission a({.slots = 1, .service_samples = 4});
  for (int i = 0; i < 4; ++i) a.job_done(100ms);
  EXPECT_EQ(a.predicted_wait(1), 100ms);
  for (int i = 0; i < 4; ++i) a.job_done(2000ms);
  EXPECT_EQ(a.predicted_wait(1), 2000ms) << "older samples have left the average";
}

TEST(Admission, QueueFullRetryAfterFromTheDrainRate) {
  Admission a({.slots = 2});
  EXPECT_EQ(a.queue_full_retry_after(8, 8), 1) << "no measurement yet";
  for (int i = 0; i < 4; ++i) a.job_done(10000ms);  // 2 slots: one job leaves every 5 s
  EXPECT_EQ(a.queue_full_retry_after(8, 8), 5);
  for (int i = 0; i < 32; ++i) a.job_done(100ms);
  EXPECT_EQ(a.queue_full_retry_after(8, 8), 1) << "never below 1 s";
}

TEST(Admission, IdleClientsAreForgotten) {
  Admission a({.slots = 1, .client = {.max_concurrent = 1, .rate = 1000}, .sweep_every = 0ms});
  for (int i = 0; i < 50; ++i) {
    auto t = a.admit_client("ip:" + std::to_string(i), std::nullopt);  // released at once
    EXPECT_TRUE(admitted(t));
  }
  auto held = a.admit_client("ip:held", std::nullopt);
  ASSERT_TRUE(admitted(held));
  std::this_thread::sleep_for(20ms);  // their buckets refill (1000/s, burst 1000: 1 token used)
  auto other = a.admit_client("ip:other", std::nullopt);
  EXPECT_EQ(a.tracked_clients(), 2u) << "only the clients holding tickets are remembered";
}

TEST(Admission, RotatingClientsWithEmptyBucketsStayBounded) {
  // A slow rate keeps every bucket short of full, so the idle sweep keeps them all; the cap
  // forgets the least recently seen instead (their buckets start full again: a rotating client
  // gains a burst, never memory).
  Admission a({.slots = 1, .client = {.rate = 0.001}, .sweep_every = 0ms, .max_clients = 100});
  for (int i = 0; i < 5000; ++i) a.admit_client("ip:" + std::to_string(i), std::nullopt);
  EXPECT_LE(a.tracked_clients(), 100u);
  auto held = a.admit_client("ip:recent", std::nullopt);
  EXPECT_TRUE(admitted(held));
  EXPECT_FALSE(admitted(a.admit_client("ip:recent", std::nullopt))) << "still remembered";
}

TEST(Admission, ConcurrentUseKeepsCountsExact) {
  Admission a({.slots = 4, .client = {.max_concurrent = 1000}});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto ticket = a.admit_client("shared", std::nullopt);
        ASSERT_TRUE(admitted(ticket));
        a.job_done(10ms);
      }
    });
  for (auto& t : threads) t.join();
  // All tickets released: the client may hold max_concurrent again.
  std::vector<std::variant<Admission::Ticket, Refusal>> held;
  for (int i = 0; i < 1000; ++i) {
    held.push_back(a.admit_client("shared", std::nullopt));
    ASSERT_TRUE(admitted(held.back())) << i;
  }
  EXPECT_FALSE(admitted(a.admit_client("shared", std::nullopt)));
}

}  // namespace
}  // namespace llmq
