#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "telemetry/process_metrics.h"

namespace llmq::telemetry {
namespace {

TEST(ResourceSampler, ASampleTooSoonHasMemoryButNoCpuShare) {
  ResourceSampler sampler;
  const ResourceUse soon = sampler.sample();  // microseconds after the first reading
  EXPECT_FALSE(soon.process_cpu_pct.has_value());
  EXPECT_FALSE(soon.host_cpu_pct.has_value());
  ASSERT_TRUE(soon.process_rss_bytes.has_value());
  EXPECT_GT(*soon.process_rss_bytes, 0);
}

TEST(ResourceSampler, SharesStayWithinAllCoresAfterBusyWork) {
  ResourceSampler sampler;
  // Busy for longer than the shortest span: the share is measured, and a tick of rounding never
  // reads past all cores.
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::duration<double>(ResourceSampler::kMinCpuSpanSeconds + 0.1);
  volatile std::uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < until) spin = spin + 1;
  const ResourceUse use = sampler.sample();
  ASSERT_TRUE(use.process_cpu_pct.has_value());
  EXPECT_GT(*use.process_cpu_pct, 0.0);
  EXPECT_LE(*use.process_cpu_pct, 1.0);
  ASSERT_TRUE(use.host_cpu_pct.has_value());
  EXPECT_GE(*use.host_cpu_pct, 0.0);
  EXPECT_LE(*use.host_cpu_pct, 1.0);
}

}  // namespace
}  // namespace llmq::telemetry
