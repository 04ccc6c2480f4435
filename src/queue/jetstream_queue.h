// JetStreamQueue: the producer side of LLM_INFERENCE when the queue lives in NATS JetStream (a
// gateway's). A job becomes a message on llmq.jobs.<model>, published with its id as MsgId (a
// retried publish is dropped by the stream's duplicate window); a full stream (MaxMsgs +
// DiscardNew: JetStream error 10077) is `full`; a broker that does not answer is `unavailable`.
//
// The job's events come back from whichever worker runs it, on this gateway's own subject, and
// are handed to the job in order:
// - each run (attempt) numbers its events; an event past a gap is held back and the worker is
//   asked to send again from the gap, so nothing reaches a client out of order or not at all;
// - a job whose worker went silent is asked about: if its message is still in the stream it
//   waits for another worker (the stream redelivers it after AckWait), else its events are lost
//   and it ends with error `event_gap`;
// - a later run (a worker died, another took the job) replaces the earlier: its `started` goes to
//   the client with its attempt, and the tokens the client already has are not sent again. The
//   seed fixed at admission makes the rerun sample the same tokens; if it does not, the job ends
//   with error `rerun_diverged` (what was sent stays true, but cannot be continued).
// - a job out of deliveries (the server's MAX_DELIVERIES advisory) ends with `worker_lost` and
//   its message is deleted (it would hold a place against MaxMsgs).
//
// Place in line comes from stream sequence numbers: each model's consumer is polled (not each
// request) for the last sequence it delivered; the jobs ahead are this gateway's own jobs of the
// same model with a sequence between that and the job's. (Other gateways' jobs are not counted.)
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "queue/job_queue.h"
#include "queue/nats_client.h"
#include "queue/wire.h"

namespace llmq {

struct JetStreamQueueOptions {
  std::string gateway_id;                          // names this gateway's events subject
  nats::QueueSettings settings;                    // the stream and consumers
  std::vector<std::string> models;                 // the models whose consumers are polled
  std::chrono::milliseconds poll_interval{250};    // consumer state for positions and metrics
  std::chrono::milliseconds publish_timeout{2000}; // a publish the broker has not acked by then fails
};

// What the queue knows of one model's consumer, for the metrics.
struct ModelQueueState {
  std::string model;
  std::int64_t pending = 0;      // waiting for a worker
  std::int64_t ack_pending = 0;  // taken by a worker, not finished
  std::int64_t redelivered = 0;  // taken again after a worker went silent or handed it back
};

struct JetStreamCounters {
  std::int64_t event_gaps = 0;        // gaps found in a run's events (then recovered or not)
  std::int64_t resends = 0;           // times a worker was asked to send events again
  std::int64_t reruns = 0;            // later runs of a job that had started
  std::int64_t tokens_suppressed = 0; // token events of a rerun the client already had
  std::int64_t diverged = 0;          // reruns that sampled other tokens
  std::int64_t lost = 0;              // jobs ended by worker_lost or event_gap
};

class JetStreamQueue final : public JobProducer {
 public:
  // Subscribes to this gateway's events and the advisories, and starts polling.
  JetStreamQueue(nats::Connection& nc, JetStreamQueueOptions options);
  ~JetStreamQueue() override;
  JetStreamQueue(const JetStreamQueue&) = delete;
  JetStreamQueue& operator=(const JetStreamQueue&) = delete;

  PushResult push(JobPtr job) override;
  bool remove(const std::string& job_id) override;
  void stop(const Job& job) override;
  std::optional<std::int64_t> position(const std::string& job_id) const override;
  std::int64_t depth() const override;
  std::int64_t capacity() const override { return options_.settings.max_jobs; }
  // This gateway's jobs that no worker took yet, in stream order (the order workers take them);
  // a job's place is as position() tells it.
  std::vector<WaitingJob> waiting(std::size_t limit) const override;

  // Polls every consumer now (the poller does it each poll_interval).
  void refresh();
  // Asks the workers of quiet running jobs to send again what this gateway may have missed
  // (after a reconnect: core NATS drops what arrives while a subscriber is away).
  void recover_events();
  // The gateway is going away: every job it follows is taken back (waiting) or stopped
  // (running), and ends with error shutting_down.
  void abandon_all();
  std::vector<ModelQueueState> model_states() const;
  JetStreamCounters counters() const;
  // Jobs this gateway follows (waiting or running).
  std::size_t tracked() const;

 private:
  struct Tracked;
  void on_event(natsMsg* msg);
  void on_advisory(natsMsg* msg);
  void apply(Tracked& t, WireEvent&& e);       // mu_ held
  void request_resend(Tracked& t);              // mu_ held
  void check_quiet_jobs();                      // poller thread
  void poll_loop(const std::stop_token& stop);
  void finish(const std::string& job_id, JobEvent last);  // mu_ held: emit, forget

  nats::Connection& nc_;
  const JetStreamQueueOptions options_;
  const std::string events_subject_;

  struct Tracked {
    JobPtr job;
    std::string model;
    std::uint64_t seq = 0;           // stream sequence of its message
    bool started = false;            // a run began (a `started` came)
    int attempt = 0;                 // the run whose events are followed (0: none yet)
    std::int64_t next_seq = 0;       // the next event number expected of that run
    std::string worker;              // who runs it
    // Per choice (a request's n), the run's next token index and the token texts the client
    // has, by index.
    std::vector<std::int64_t> next_index = std::vector<std::int64_t>(1, 0);
    std::vector<std::vector<std::string>> sent = std::vector<std::vector<std::string>>(1);
    std::chrono::steady_clock::time_point last_heard{};
    std::chrono::steady_clock::time_point last_resend{};
    int silent_checks = 0;           // quiet checks without an answer or progress
    int requeue_told = 0;            // the attempt the client was last told a `requeued` for
  };
  mutable std::mutex mu_;  // guards everything below; events are emitted with it held (in order)
  std::unordered_map<std::string, Tracked> jobs_;
  std::map<std::uint64_t, std::string> by_seq_;  // stream sequence -> job id, for positions
  std::map<std::string, ModelQueueState> states_;
  std::map<std::string, std::uint64_t> delivered_seq_;  // per model: last stream seq delivered
  std::int64_t pushed_since_poll_ = 0;
  JetStreamCounters counters_;
  std::atomic<bool> stopping_{false};  // the destructor began: a refresh under way ends early
  nats::SubPtr events_sub_;
  nats::SubPtr advisory_sub_;
  std::jthread poller_;
};

}  // namespace llmq
