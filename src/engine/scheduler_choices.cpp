// The scheduler's jobs of n > 1 choices (OpenAI's `n`): one slot per choice. The first choice's
// slot (the leader) prefills the prompt like any job; the others wait, take a copy of its KV
// cells once its last prompt token is decoded, sample their first token from the same logits
// with samplers of their own (seeds seed+1, seed+2, …), and then decode side by side. The job
// ends with one `done` once every choice has ended, or with one error for all of them.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "engine/elapsed.h"
#include "engine/scheduler.h"
#include "engine/scheduler_slot.h"

namespace llmq {
namespace {

// Choice k's seed: the job's, moved on by k (llama.cpp reads 0xFFFFFFFF as "pick at random").
std::optional<std::uint32_t> choice_seed(const std::optional<std::uint32_t>& seed,
                                         std::int32_t choice) {
  if (!seed) return seed;
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(*seed) + static_cast<std::uint64_t>(choice)) %
                                    0xFFFFFFFFu);
}

}  // namespace

std::size_t Scheduler::free_slots() const {
  return static_cast<std::size_t>(
      std::ranges::count_if(slots_, [](const auto& slot) { return !slot->busy(); }));
}

bool Scheduler::begin(const JobPtr& job, int attempt) {
  const std::vector<Token>& prompt = job->request().prompt_tokens;
  const std::int32_t n = job->request().params.n;
  if (n <= 1) {
    start_job(slot_for(prompt), job, attempt);
    return true;
  }
  if (n > engine_.slots()) {  // a gateway that allows more than this worker can decode at once
    job->emit(ErrorEvent{"too_many_choices",
                         "n=" + std::to_string(n) + " choices are decoded side by side, one slot each; "
                         "this worker has " + std::to_string(engine_.slots())});
    return true;
  }
  if (free_slots() < static_cast<std::size_t>(n)) return false;
  Slot& leader = slot_for(prompt);
  if (!start_job(leader, job, attempt)) return true;  // it ended there (its client left, late)
  leader.group = std::make_shared<ChoiceGroup>(n);
  leader.group->cached = leader.cached;
  leader.group->started = leader.started;
  for (std::int32_t choice = 1; choice < n; ++choice) {
    if (!start_choice(slot_for(prompt), leader, choice)) return true;
  }
  return true;
}

bool Scheduler::start_choice(Slot& slot, Slot& leader, std::int32_t choice) {
  SamplingParams params = leader.job->request().params.sampling;
  params.seed = choice_seed(params.seed, choice);
  std::unique_ptr<Sampler> sampler;
  try {
    sampler = engine_.make_sampler(params);
  } catch (const std::exception& e) {
    fail(leader, "engine_failure", e.what());
    return false;
  }
  // The slot's cells and `cache` stay as they are until the fork replaces them: a job that ends
  // before it leaves the cache true for the next one.
  slot.job = leader.job;
  slot.sampler = std::move(sampler);
  slot.group = leader.group;
  slot.choice = choice;
  slot.leader = &leader;
  slot.shares_prompt = true;
  slot.logprobs.clear();
  slot.text = TextStream(slot.job->request().params.stop);
  slot.cached = 0;
  slot.prompt_done = 0;
  slot.pos = 0;
  slot.generated = 0;
  slot.events_sent = 0;
  slot.batch_index = -1;
  slot.started = leader.started;
  slot.attempt = leader.attempt;
  busy_slots_.fetch_add(1);
  return true;
}

void Scheduler::fork_choices() {
  for (auto& slot : slots_) {
    if (!slot->busy() || !slot->awaiting_fork()) continue;
    const Slot& leader = *slot->leader;
    // The leader's prompt is whole in its cells once the step that sampled nothing yet ends it.
    if (leader.batch_index < 0 || leader.prefilling() || leader.generated > 0) continue;
    const std::vector<Token>& prompt = slot->job->request().prompt_tokens;
    const auto keep = static_cast<std::int32_t>(prompt.size());
    slot->leader = nullptr;
    if (engine_.copy_slot_prefix(leader.id, slot->id, keep)) {
      slot->cache = prompt;
      slot->prompt_done = prompt.size();
      slot->pos = keep;
      slot->batch_index = leader.batch_index;  // its first token comes from the same logits
      continue;
    }
    // A memory that cannot copy: this choice prefills the prompt itself, as a job of its own.
    spdlog::debug("slot {}: cannot copy the prompt of slot {}; prefilling it", slot->id, leader.id);
    engine_.clear_slot(slot->id);
    slot->cache.clear();
    slot->shares_prompt = false;
  }
}

void Scheduler::finish_choice(Slot& slot, const char* finish_reason) {
  ChoiceGroup& group = *slot.group;
  group.finish_reasons[static_cast<std::size_t>(slot.choice)] = finish_reason;
  group.completion_tokens += slot.generated;
  if (slot.generated > 0 && (!group.first_token || slot.first_token < *group.first_token))
    group.first_token = slot.first_token;
  const std::shared_ptr<ChoiceGroup> keep = slot.group;  // release() drops the slot's share
  const JobPtr job = release(slot);
  if (--group.running > 0) return;

  const Clock::time_point now = Clock::now();
  DoneEvent done;
  done.finish_reason = group.finish_reasons.front();
  done.choice_finish_reasons = group.finish_reasons;
  done.usage.prompt_tokens = static_cast<std::int64_t>(job->request().prompt_tokens.size());
  done.usage.completion_tokens = group.completion_tokens;
  done.usage.cached_tokens = static_cast<std::int64_t>(group.cached);
  done.timings.queue_ms = ms_between(job->arrived(), group.started);
  done.timings.total_ms = ms_between(job->arrived(), now);
  if (group.first_token) {
    done.timings.ttft_ms = ms_between(group.started, *group.first_token);
    const double decode_s = std::chrono::duration<double>(now - *group.first_token).count();
    const auto n = static_cast<std::int64_t>(group.finish_reasons.size());
    if (group.completion_tokens > n && decode_s > 0)
      done.timings.decode_tokens_per_s = static_cast<double>(group.completion_tokens - n) / decode_s;
  }
  if (model_metrics_) {
    const double total_s = seconds_between(job->arrived(), now);
    model_metrics_->duration.observe(total_s);
    model_metrics_->window.observe(total_s);
  }
  job->emit(std::move(done));
}

}  // namespace llmq
