// Tests of the command line of `llmq gateway` and `llmq worker` (scale-out): serve's flags and
// the NATS ones.
#include "cli/config.h"

#include "cli/config_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>


namespace llmq {
namespace {

using namespace config_test;

TEST(ScaleOutConfig, GatewayAndWorkerTakeServesFlagsAndTheNatsOnes) {
  const ServeConfig g = serve({"gateway", "--nats-url", "nats://broker:4222", "--port", "9000",
                               "--queue-max", "7", "--ack-wait-ms", "1500"});
  EXPECT_EQ(g.role, Role::gateway);
  EXPECT_EQ(g.nats_url, "nats://broker:4222");
  EXPECT_EQ(g.port, 9000);
  EXPECT_EQ(g.queue_max, 7);
  EXPECT_EQ(g.ack_wait_ms, 1500);
  const ServeConfig w = serve({"worker", "--slots", "3", "--threads", "1", "--max-loaded", "1"},
                              {{"HOME", "/home/u"}, {"LLMQ_NATS_URL", "tls://n:4222"}});
  EXPECT_EQ(w.role, Role::worker);
  EXPECT_EQ(w.nats_url, "tls://n:4222");
  EXPECT_EQ(w.slots, 3);
  EXPECT_EQ(w.ack_wait_ms, 3000);
  EXPECT_EQ(serve({"serve"}).role, Role::serve);
}

TEST(ScaleOutConfig, ABadNatsUrlOrAckWaitIsAUsageError) {
  EXPECT_NE(usage_error({"gateway", "--nats-url", "http://x:4222"}).find("--nats-url"), std::string::npos);
  EXPECT_NE(usage_error({"worker", "--ack-wait-ms", "10"}).find("ack-wait-ms"), std::string::npos);
  // serve has no queue in NATS: the flag is not its own.
  usage_error({"serve", "--nats-url", "nats://x:4222"});
}

TEST(ScaleOutConfig, TheDescriptionMasksTheBrokersCredentials) {
  const ServeConfig g = serve({"gateway", "--nats-url", "nats://user:secret@broker:4222"});
  const std::string line = describe(g);
  EXPECT_NE(line.find("nats_url="), std::string::npos) << line;
  EXPECT_EQ(line.find("secret"), std::string::npos) << line;
}

}  // namespace
}  // namespace llmq
