// Scheduler::Slot: one sequence of the engine's context and the job it runs. Internal to the
// scheduler's files (engine/scheduler*.cpp); owned by its run() thread like every Slot.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/scheduler.h"

namespace llmq {

// A sequence of the engine's context and the job it is running.
struct Scheduler::Slot {
  std::int32_t id;                       // the engine's sequence id
  JobPtr job;                            // null while free
  std::unique_ptr<Sampler> sampler;      // this job's sampling state
  TextStream text;                       // pieces → releasable text
  std::size_t prompt_done = 0;           // prompt tokens already in the context
  std::int32_t pos = 0;                  // next position in the sequence
  Token last = 0;                        // last sampled token, decoded next step
  std::int32_t generated = 0;            // tokens sampled so far
  std::int64_t events_sent = 0;          // token events sent, the `i` of the next one
  std::int32_t batch_index = -1;         // entry of the last batch to sample from, or -1
  Clock::time_point started;             // when the slot took the job
  int attempt = 1;                       // which run of the job this is
  Clock::time_point first_token;         // when the first token was sampled
  Clock::time_point last_token;          // when the latest token was sampled
  std::size_t cached = 0;                // prompt tokens this job found in the KV cache
  std::vector<LogprobEntry> logprobs;    // of tokens whose text has not gone out yet
  // The tokens whose KV cells the sequence holds, positions 0…: what the job before left
  // behind (its prompt and answer) until the next job keeps the prefix it shares.
  std::vector<Token> cache;
  Clock::time_point last_used;           // when its latest job ended (which cache to give up)
  // A job of n > 1 choices holds n slots: choice 0's prefills the prompt (the leader), the
  // others wait for it and then copy its cells (fork_choices()).
  std::int32_t choice = 0;               // which of its job's choices this slot decodes
  Slot* leader = nullptr;                // while waiting for the prompt: the leader's slot
  std::shared_ptr<ChoiceGroup> group;    // what the job's choices share; null when n == 1
  bool shares_prompt = false;            // its prompt cells are the leader's (not counted twice)

  bool busy() const { return job != nullptr; }
  bool prefilling() const { return prompt_done < job->request().prompt_tokens.size(); }
  // A later choice that has no prompt cells yet: it takes no part in a batch.
  bool awaiting_fork() const { return leader != nullptr; }
};

// What the choices of one job share until the last of them ends.
struct Scheduler::ChoiceGroup {
  explicit ChoiceGroup(std::int32_t n) : finish_reasons(static_cast<std::size_t>(n)), running(n) {}
  std::vector<std::string> finish_reasons;  // by choice; empty while it runs
  std::int32_t running;                     // choices not ended yet
  std::int64_t completion_tokens = 0;       // sampled by the ended choices
  std::size_t cached = 0;                   // prompt tokens the leader found in the cache
  Clock::time_point started;                // when the leader took the job
  std::optional<Clock::time_point> first_token;  // the earliest first token of any choice
};

}  // namespace llmq
