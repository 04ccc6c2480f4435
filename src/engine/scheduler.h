// Scheduler: the inference worker's decode loop, continuous batching over the engine's slots.
//
// One thread (started by start()) owns the engine's context and every Slot; nothing else touches
// them. Each step it (1) hands free slots the next jobs from the queue, (2) drops slots whose
// client left or whose deadline passed, (3) builds one batch holding the next token of every
// generating sequence plus prompt chunks of sequences still prefilling, within the engine's
// per-step token budget (and, while others generate, the stall factor's), (4) decodes it and
// (5) samples and streams one token per sequence that asked for logits. A finished sequence
// frees its slot at once, and the next step fills it.
//
// Prefix cache: a slot keeps the KV cells of its last job after that job ends. A new job takes
// the free slot whose cells share the longest prefix with its prompt and prefills only the rest;
// when another slot (even a busy one) holds a much longer shared prefix, its cells are copied.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/slot_board.h"
#include "engine/step_cost.h"
#include "engine/step_trace.h"
#include "engine/text_stream.h"
#include "queue/job_queue.h"
#include "telemetry/service_metrics.h"

namespace llmq {

struct SchedulerOptions {
  std::string worker_id = "worker-0";  // shown to clients in `started`
  telemetry::ServiceMetrics* metrics = nullptr;  // where to observe latencies; null: nowhere
  SlotBoard* slot_board = nullptr;  // where each step's slot states go (the status); null: nowhere
  // Retries: a job whose decode failed before it sent a token runs again, up to max_attempts
  // runs in all, after an exponential backoff with full jitter (uniform in
  // [0, min(backoff_max, backoff_initial * 2^(attempt-1))]). A job that sent tokens fails at
  // once (a rerun would repeat them); one out of attempts is dead-lettered.
  int max_attempts = 3;
  // Niceness of the decode thread and the compute threads it starts (they inherit it): above 0,
  // the HTTP threads get a core at once when they need one (a refusal, a ping) while decoding
  // keeps every core busy; decoding loses nothing while they are idle. 0: unchanged.
  int nice = 0;
  // Chunked prefill, while other sequences generate: two budgets, one per side, from the
  // measured step costs (see prefill_budget() in the .cpp). Steps with nothing generating take
  // a whole batch of prompt.
  // The running streams' budget: a step carrying prompt chunks takes at most about this many
  // times as long as a step without them, so a long prompt arriving slows the streams by that
  // factor instead of freezing them. 0: no limit (whole batches, as llama-server does).
  double decode_stall_factor = 3.0;
  // The newcomers' budget: a prompt prefilled beside running streams advances at least
  // 1/prefill_slowdown as fast as it would in whole batches (its time to first token at most
  // about this many times as long). Where the two budgets conflict, this one wins: a long
  // prompt is never starved. 0 (or anything up to 1): no floor; the streams' budget alone.
  // Both give way when newcomers outnumber the streams: then prompts go in whole batches
  // (engine/prefill_policy.h).
  double prefill_slowdown = 2.0;
  StepTrace* step_trace = nullptr;  // where to write a line per step; null: nowhere
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{2000};
};

class Scheduler {
 public:
  Scheduler(Engine& engine, JobConsumer& queue, SchedulerOptions options);
  ~Scheduler();  // stops and joins
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void start();
  // Stops after the current step; running jobs end with error "shutting_down". Idempotent.
  void stop();

  std::int32_t busy_slots() const { return busy_slots_.load(std::memory_order_relaxed); }
  std::int32_t total_slots() const { return engine_.slots(); }
  // Jobs this scheduler holds: in a slot, or waiting out a retry's backoff. Any thread.
  std::int32_t held_jobs() const {
    return busy_slots_.load() + retrying_.load() + embedding_jobs_.load() + holding_.load();
  }
  // Jobs taken from the queue so far, each counted once it is in a slot (or ended there and then:
  // a cancelled or late one). Read before held_jobs(), and equal to the pops the queue handed
  // out, it tells an idle scheduler from one between taking a job and starting it (the warm
  // pool's test before it unloads a model). Any thread.
  std::uint64_t jobs_taken() const { return jobs_taken_.load(); }

 private:
  struct Slot;
  struct ChoiceGroup;

  void run(const std::stop_token& stop);
  void fill_free_slots(bool may_block);
  // Runs embedding jobs together: one engine call over all their inputs; each job gets its
  // vectors and `done`. Empties `jobs`.
  void run_embeddings(std::vector<JobPtr>& jobs);
  // False (and the job ended with its error) when the job's client left or its deadline passed.
  static bool may_start(Job& job, Clock::time_point now);
  // The free slot a job with this prompt should take (the longest cached prefix; see .cpp).
  Slot& slot_for(const std::vector<Token>& prompt);
  // Starts a job taken from the queue (or a retry) in a free slot, or one per choice when it
  // asks for n > 1. False, with nothing done, when fewer slots than that are free: the caller
  // holds the job until they are.
  bool begin(const JobPtr& job, int attempt);
  bool start_job(Slot& slot, JobPtr job, int attempt = 1);
  // Choice `choice` of the job the leader slot started: waits for the leader's prompt.
  bool start_choice(Slot& slot, Slot& leader, std::int32_t choice);
  // The later choices whose leader decoded its prompt's last token in this step take a copy of
  // its cells and sample their first token from the same logits.
  void fork_choices();
  // A choice of a job with n > 1 ended: `done` goes out once the last one has.
  void finish_choice(Slot& slot, const char* finish_reason);
  std::size_t free_slots() const;
  // Readies the slot's cache for the prompt: keeps the prefix they share, or copies a longer
  // one from another slot, and drops the rest. Returns the prompt tokens it holds.
  std::size_t reuse_prefix(Slot& slot, const std::vector<Token>& prompt);
  void drop_departed();
  std::vector<BatchEntry> build_batch();
  // Prompt tokens one step may carry while `generating` sequences generate and `waiting`
  // wait for their first token (the two budgets; see .cpp).
  std::size_t prefill_budget(std::size_t generating, std::size_t waiting);
  // Feeds the measured duration of the last decoded batch into the step cost estimates.
  void note_step_cost(double seconds);
  // Samples every sequence that asked for logits and sends its token; returns how many.
  std::size_t consume_logits();
  // A sampled token's log-probabilities as the client gets them.
  LogprobEntry logprob_entry(Token token, const PositionLogprobs& at) const;
  void emit_token(Slot& slot, Token token, Clock::time_point sampled);
  void finish(Slot& slot, const char* finish_reason);
  void fail(Slot& slot, const char* code, const std::string& message);
  // A decode failure: retry the slot's job if it may be, else fail (and dead-letter) it.
  void retry_or_fail(Slot& slot);
  // The retried job whose backoff has passed, if any.
  struct Retry;
  std::optional<Retry> due_retry(Clock::time_point now);
  // Copies the slots' states to options_.slot_board, if any (once per step).
  void publish_slots() const;
  // Frees the slot (and its KV cells); returns the job it held.
  JobPtr release(Slot& slot);

  Engine& engine_;                          // the model and its context (this thread's)
  JobConsumer& queue_;                         // where jobs come from
  const SchedulerOptions options_;
  telemetry::ModelMetrics* model_metrics_ = nullptr;  // this model's instruments, or null
  std::vector<std::unique_ptr<Slot>> slots_;  // one per engine sequence; run() thread only
  struct Retry {
    Clock::time_point at;  // not before
    JobPtr job;
    int attempt;           // the run it will be
  };
  std::vector<Retry> retries_;                // jobs waiting out a backoff; run() thread only
  std::optional<Retry> held_;  // a job of n choices waiting for n free slots (it goes first)
  std::mt19937_64 rng_{std::random_device{}()};  // backoff jitter; run() thread only
  // Step costs (run() thread only), in seconds:
  std::optional<double> decode_step_s_;  // a plain decode step (moving average)
  StepCost mixed_steps_;                  // steps with prompt chunks beside decodes
  bool vary_ = false;                     // alternates the chunk size, for the fit
  std::size_t step_generating_ = 0, step_prompt_ = 0;  // what the last built batch held
  std::size_t step_prefilling_ = 0;                    // sequences with prompt tokens in it
  // Counters other threads read (sequentially consistent, so that jobs_taken() then held_jobs()
  // never misses a job between two of them):
  std::atomic<std::int32_t> busy_slots_{0};   // slots holding a job, for readiness and metrics
  std::atomic<std::int32_t> retrying_{0};     // jobs in retries_
  std::atomic<std::int32_t> embedding_jobs_{0};  // in run_embeddings (they take no slot)
  std::atomic<std::int32_t> holding_{0};      // 1 while held_ holds a job
  std::atomic<std::uint64_t> jobs_taken_{0};  // see jobs_taken()
  std::jthread thread_;                       // runs run()
};

}  // namespace llmq
