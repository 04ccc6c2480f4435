#include "queue/worker_presence.h"

#include <gtest/gtest.h>

namespace llmq {
namespace {

TEST(WorkerHeartbeat, CarriesTheWorkersResources) {
  WorkerHeartbeat beat;
  beat.worker = "box2/4711";
  beat.slots = 4;
  beat.slots_busy = 1;
  beat.models = {{"SmolLM2", "warm"}};
  beat.at_ms = 1764633600123;
  beat.host = "box2";
  beat.resources = telemetry::ResourceUse{.process_cpu_pct = 0.42, .host_cpu_pct = std::nullopt,
                                          .process_rss_bytes = 734003200, .host_memory_used_bytes = 5'000'000'000};
  const auto back = decode_heartbeat(encode_heartbeat(beat));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->worker, "box2/4711");
  EXPECT_EQ(back->slots_busy, 1);
  EXPECT_EQ(back->at_ms, 1764633600123);
  EXPECT_EQ(back->host, "box2");
  ASSERT_TRUE(back->resources.has_value());
  EXPECT_DOUBLE_EQ(back->resources->process_cpu_pct.value_or(-1), 0.42);
  EXPECT_FALSE(back->resources->host_cpu_pct.has_value());  // unread stays unread, not 0
  EXPECT_EQ(back->resources->process_rss_bytes.value_or(-1), 734003200);
  EXPECT_EQ(back->resources->host_memory_used_bytes.value_or(-1), 5'000'000'000);
}

TEST(WorkerHeartbeat, AnOlderWorkersBeatHasNoResources) {
  const auto beat = decode_heartbeat(R"({"worker":"w","slots":2,"slots_busy":0,"models":{}})");
  ASSERT_TRUE(beat.has_value());
  EXPECT_FALSE(beat->resources.has_value());
  EXPECT_EQ(beat->at_ms, 0);
}

TEST(WorkerHeartbeat, ResourcesWithoutTheirTimeAreNoHeartbeat) {
  EXPECT_FALSE(decode_heartbeat(
      R"({"worker":"w","slots":2,"slots_busy":0,"models":{},"resources":{},"host":"h"})"));
  EXPECT_FALSE(decode_heartbeat("not json"));
  EXPECT_FALSE(decode_heartbeat(R"({"worker":"","slots":1,"slots_busy":0,"models":{}})"));
}

}  // namespace
}  // namespace llmq
