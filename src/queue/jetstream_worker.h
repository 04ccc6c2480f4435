// JetStreamWorker: a worker's side of LLM_INFERENCE in NATS JetStream. For each model it serves,
// one thread fetches from that model's durable pull consumer only as many jobs as the model can
// start now (`room`, from the warm pool), and puts them in the model's local inbox (an
// InProcessQueue the model's scheduler pops), so the decode loop never waits on the network.
//
// Each fetched job gets a sink that numbers its events and publishes them to the gateway that
// admitted it, keeps them for a while (a gateway that missed some asks for them again on
// llmq.resend.<worker>), and acks the message once the job ended (done or error), retrying the
// ack through a broker outage. While the job runs the message is kept ours with an in-progress
// heartbeat every AckWait/3, so a worker that dies (SIGKILL) loses its jobs to another worker
// after AckWait, and one that lives never does. A cancel (llmq.cancel) stops a held job.
//
// Shutting down: stop_fetching() first; jobs that cannot finish are handed back (nak: another
// worker reruns them at once), never failed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "queue/in_process_queue.h"
#include "queue/nats_client.h"
#include "queue/wire.h"

namespace llmq {

struct JetStreamWorkerOptions {
  std::string worker_id;                     // in `started`, and names the resend subject
  nats::QueueSettings settings;              // the stream and consumers (ack_wait sets heartbeats)
  std::vector<std::string> models;           // one consumer and fetch thread each
  // How many more jobs of this model could start now (free slots, or a load that can begin).
  std::function<std::int64_t(const std::string& model)> room;
  // The model's local inbox.
  std::function<InProcessQueue&(const std::string& model)> inbox;
  std::chrono::seconds keep_events{60};      // how long a finished job's events stay resendable
};

class JetStreamWorker {
 public:
  JetStreamWorker(nats::Connection& nc, JetStreamWorkerOptions options);
  ~JetStreamWorker();  // stops fetching, hands back what it still holds
  JetStreamWorker(const JetStreamWorker&) = delete;
  JetStreamWorker& operator=(const JetStreamWorker&) = delete;

  // Binds to the consumers and starts fetching.
  void start();
  // No more fetches (SIGTERM); what was fetched goes on.
  void stop_fetching();
  // From now on a job that ends with shutting_down is handed back to the stream (nak) instead of
  // failing; then every job still waiting in an inbox is handed back too.
  void hand_back();
  // Jobs fetched and not yet finished (waiting in an inbox or running).
  std::size_t held() const;
  // Jobs this worker took again after another worker went silent or handed them back.
  std::int64_t redelivered() const { return redelivered_.load(); }
  // Waits for the pending acks to reach the broker, up to `until`.
  void flush_acks(std::chrono::steady_clock::time_point until);

 private:
  class Sink;
  struct Held;
  void fetch_loop(const std::string& model, const std::stop_token& stop);
  void take(natsMsg* msg);
  void on_cancel(natsMsg* msg);
  void on_resend(natsMsg* msg);
  void heartbeat_loop(const std::stop_token& stop);
  void ack_loop(const std::stop_token& stop);
  // A job's sink saw its last event: ack (or nak when handed back) and keep its events a while.
  void ended(const std::string& job_id, bool hand_back);
  void publish_event(Held& held, JobEvent event);  // mu_ held

  nats::Connection& nc_;
  const JetStreamWorkerOptions options_;

  struct Held {
    nats::MsgPtr msg;                  // the JetStream message, until acked or naked
    WorkItem work;
    int delivery = 1;                  // NumDelivered: the run of this job
    std::int64_t next_seq = 0;         // the next event's number
    std::vector<std::string> events;   // every event sent, encoded, by seq (for resends)
    bool ended = false;
    std::chrono::steady_clock::time_point ended_at{};
    std::weak_ptr<Job> job;
  };
  struct Settle {
    nats::MsgPtr msg;
    bool ack;  // false: nak (hand back)
    std::chrono::steady_clock::time_point give_up;
  };
  mutable std::mutex mu_;  // guards everything below
  // Woken when a job ends (a slot may be free: the fetch threads look again) or an ack or nak
  // is queued (the ack thread): no thread polls while nothing happens, so none takes a core
  // from the decode threads.
  std::condition_variable changed_;
  std::unordered_map<std::string, Held> held_;  // by job id, running or ended (kept keep_events)
  std::deque<Settle> settles_;                  // acks and naks not yet through
  std::atomic<bool> fetching_{false};
  std::atomic<bool> handing_back_{false};
  std::atomic<std::int64_t> redelivered_{0};
  std::map<std::string, nats::SubPtr> pull_subs_;
  nats::SubPtr cancel_sub_;
  nats::SubPtr resend_sub_;
  std::vector<std::jthread> fetchers_;
  std::jthread heartbeat_;
  std::jthread acker_;
};

}  // namespace llmq
