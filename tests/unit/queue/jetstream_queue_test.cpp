#include "queue/jetstream_queue.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "queue/jetstream_worker.h"
#include "queue/nats_server.h"
#include "queue_contract.h"

namespace llmq {
namespace {

using std::chrono::milliseconds;

const std::vector<std::string> kModels = {"m", "other-model"};

// A worker's fetch as the contract's consumer: takes the next job of any model, oldest first
// per model, and acks it (it is the worker's from then on).
class FetchingConsumer final : public JobConsumer {
 public:
  explicit FetchingConsumer(nats::Connection& nc) {
    for (const std::string& model : kModels) {
      jsSubOptions so;
      jsSubOptions_Init(&so);
      const std::string durable = nats::consumer_name(model);
      so.Stream = kQueueName;
      so.Consumer = durable.c_str();
      natsSubscription* sub = nullptr;
      nats::check(js_PullSubscribe(&sub, nc.js(), nats::jobs_subject(model).c_str(), durable.c_str(),
                                   nullptr, &so, nullptr),
                  "pull subscribe");
      subs_.emplace_back(sub);
    }
  }

  std::optional<JobPtr> pop(milliseconds timeout) override {
    const auto until = std::chrono::steady_clock::now() + timeout;
    do {
      for (auto& sub : subs_) {
        natsMsgList list{};
        if (natsSubscription_Fetch(&list, sub.get(), 1, 50, nullptr) == NATS_OK && list.Count == 1) {
          natsMsg* msg = list.Msgs[0];
          auto work = decode_work(std::string_view(natsMsg_GetData(msg),
                                                   static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
          natsMsg_AckSync(msg, nullptr, nullptr);
          natsMsgList_Destroy(&list);
          if (auto* w = std::get_if<WorkItem>(&work))
            return std::make_shared<Job>(w->id, w->request, std::nullopt,
                                         std::make_shared<contract::NullSink>());
          return std::nullopt;
        }
        natsMsgList_Destroy(&list);
      }
    } while (std::chrono::steady_clock::now() < until);
    return std::nullopt;
  }

 private:
  std::vector<nats::SubPtr> subs_;
};

nats::QueueSettings settings_for(std::int64_t capacity) {
  nats::QueueSettings s;
  s.max_jobs = capacity;
  s.ack_wait = milliseconds(1000);
  s.file_storage = false;
  return s;
}

// The gateway's side over a real nats-server; what it reports is current after a poll.
class JetStreamHarness {
 public:
  explicit JetStreamHarness(std::int64_t capacity)
      : nc_(server_.url(), "contract"),
        queue_((nc_.ensure_queue(settings_for(capacity), kModels), nc_),
               JetStreamQueueOptions{.gateway_id = "gw", .settings = settings_for(capacity),
                                     .models = kModels, .poll_interval = milliseconds(50)}),
        consumer_(nc_) {}
  JobProducer& producer() { return queue_; }
  JobConsumer& consumer() { return consumer_; }
  void settle() { queue_.refresh(); }

 private:
  testing::NatsServer server_;
  nats::Connection nc_;
  JetStreamQueue queue_;
  FetchingConsumer consumer_;
};

}  // namespace

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(JetStream, QueueContract, JetStreamHarness);
}  // namespace contract

namespace {

TEST(Nats, ModelNamesBecomeSubjectTokens) {
  EXPECT_EQ(nats::subject_token("SmolLM2-135M-Instruct.Q4_1"), "SmolLM2-135M-Instruct_Q4_1");
  EXPECT_EQ(nats::jobs_subject("a.b*c>d e"), "llmq.jobs.a_b_c_d_e");
  EXPECT_EQ(nats::consumer_name("gemma-3-270m-q4_k_m"), "llmq-gemma-3-270m-q4_k_m");
}

}  // namespace
}  // namespace llmq
