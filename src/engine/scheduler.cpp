#include "engine/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <utility>

#include "engine/elapsed.h"
#include "engine/scheduler_slot.h"
#include "util/thread_priority.h"

namespace llmq {
namespace {


// How long an idle worker waits on the queue before it looks at its stop flag again.
constexpr std::chrono::milliseconds kIdleWait{100};

// The fewest prompt tokens worth copying another slot's cache for. A copy moves a whole
// sequence's K and V buffers (ctx-size tokens' worth); prefilling this many tokens costs about
// as much on a small model, and far more on a large one.
constexpr std::size_t kMinCopyTokens = 64;
// Embedding jobs gathered for one run: until their inputs hold this many tokens.
constexpr std::size_t kEmbedBatchTokens = 4096;

std::size_t common_prefix(const std::vector<Token>& a, const std::vector<Token>& b) {
  const auto [ia, ib] = std::ranges::mismatch(a, b);
  return static_cast<std::size_t>(ia - a.begin());
}

}  // namespace

Scheduler::Scheduler(Engine& engine, JobConsumer& queue, SchedulerOptions options)
    : engine_(engine), queue_(queue), options_(std::move(options)) {
  if (options_.metrics != nullptr) model_metrics_ = &options_.metrics->model(engine_.info().name);
  for (std::int32_t i = 0; i < engine_.slots(); ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->id = i;
  }
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
  thread_ = std::jthread([this](const std::stop_token& stop) { run(stop); });
}

void Scheduler::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

void Scheduler::run(const std::stop_token& stop) {
  name_this_thread("llmq-decode");
  lower_this_thread_priority(options_.nice, "the decode threads");
  Clock::time_point step_ended = Clock::now();
  while (!stop.stop_requested()) {
    const bool idle = busy_slots() == 0;
    fill_free_slots(idle);
    drop_departed();
    publish_slots();  // an idle loop still comes here every kIdleWait
    std::vector<BatchEntry> batch = build_batch();
    if (batch.empty()) {
      step_ended = Clock::now();
      continue;
    }
    const Clock::time_point step_began = Clock::now();
    const bool decoded = engine_.decode(batch);
    const Clock::time_point decoded_at = Clock::now();
    if (decoded) note_step_cost(seconds_between(step_began, decoded_at));
    if (!decoded) {
      for (const BatchEntry& entry : batch) {
        Slot& slot = *slots_[static_cast<std::size_t>(entry.slot)];
        if (slot.busy()) retry_or_fail(slot);
      }
      step_ended = Clock::now();
      continue;
    }
    const std::size_t sampled = consume_logits();
    const Clock::time_point sampled_at = Clock::now();
    if (options_.step_trace != nullptr) {
      options_.step_trace->write(engine_.info().name,
                                 StepRecord{.generating = step_generating_,
                                            .prompt_tokens = step_prompt_,
                                            .prefilling = step_prefilling_,
                                            .sampled = sampled,
                                            .wait_ms = 1000 * seconds_between(step_ended, step_began),
                                            .decode_ms = 1000 * seconds_between(step_began, decoded_at),
                                            .sample_ms = 1000 * seconds_between(decoded_at, sampled_at)});
    }
    step_ended = sampled_at;
  }
  for (auto& slot : slots_) {
    if (slot->busy()) fail(*slot, "shutting_down", "the server is shutting down");
  }
  for (Retry& retry : retries_) {
    retry.job->emit(ErrorEvent{"shutting_down", "the server is shutting down"});
  }
  retries_.clear();
  retrying_.store(0);
  if (held_) held_->job->emit(ErrorEvent{"shutting_down", "the server is shutting down"});
  held_.reset();
  holding_.store(0);
  if (options_.slot_board != nullptr) options_.slot_board->forget(engine_.info().name);
}

std::optional<Scheduler::Retry> Scheduler::due_retry(Clock::time_point now) {
  auto due = std::ranges::min_element(retries_, {}, &Retry::at);
  if (due == retries_.end() || due->at > now) return std::nullopt;
  Retry retry = std::move(*due);
  retries_.erase(due);
  return retry;
}

void Scheduler::retry_or_fail(Slot& slot) {
  // After a failed decode the sequences' cells are not to be trusted: no later job reuses them.
  // Every slot of the job (its choices) goes, and comes back together, or fails together.
  std::int64_t events_sent = 0;
  for (auto& other : slots_) {
    if (other->job != slot.job) continue;
    engine_.clear_slot(other->id);
    other->cache.clear();
    events_sent += other->events_sent;
  }
  const int attempt = slot.attempt;
  if (events_sent > 0) {
    fail(slot, "engine_failure", "the model could not decode the batch (output was sent: not retried)");
    return;
  }
  if (attempt >= options_.max_attempts) {
    if (options_.metrics != nullptr) options_.metrics->dead_lettered().inc();
    fail(slot, "engine_failure",
         "the model could not decode the batch; gave up after " + std::to_string(attempt) + " attempts");
    return;
  }
  const auto cap = std::min<std::int64_t>(options_.backoff_max.count(),
                                          options_.backoff_initial.count() << std::min(attempt - 1, 20));
  const auto wait = std::chrono::milliseconds(
      std::uniform_int_distribution<std::int64_t>(0, std::max<std::int64_t>(0, cap))(rng_));
  spdlog::warn("job {}: decode failed on slot {} (attempt {} of {}): retrying in {} ms",
               slot.job->id(), slot.id, attempt, options_.max_attempts, wait.count());
  if (options_.metrics != nullptr) options_.metrics->job_retries().inc();
  retrying_.fetch_add(1);  // before release() lets busy_slots_ fall: held_jobs() never dips
  JobPtr job = slot.job;
  for (auto& other : slots_)
    if (other->job == job) release(*other);
  retries_.push_back(Retry{Clock::now() + wait, std::move(job), attempt + 1});
}

void Scheduler::fill_free_slots(bool may_block) {
  const auto has_free = [this] {
    return std::ranges::any_of(slots_, [](const auto& slot) { return !slot->busy(); });
  };
  // Only an idle worker waits: a busy one must go on decoding its running sequences. Jobs being
  // retried go first once their backoff passed; an idle worker waits no longer than the next.
  std::vector<JobPtr> embeddings;
  std::size_t embedding_tokens = 0;
  while (has_free()) {
    const Clock::time_point now = Clock::now();
    if (held_) {  // a job of n choices, first in line until n slots are free
      if (!may_start(*held_->job, now)) {
        held_.reset();
        holding_.store(0);
        continue;
      }
      if (!begin(held_->job, held_->attempt)) break;
      held_.reset();
      holding_.store(0);  // after begin counted it busy: held_jobs() never dips
      continue;
    }
    if (std::optional<Retry> retry = due_retry(now)) {
      may_block = false;
      if (!begin(retry->job, retry->attempt)) {
        holding_.store(1);
        held_ = std::move(retry);
      }
      retrying_.fetch_sub(1);  // after begin counted it busy (or held): held_jobs() never dips
      continue;
    }
    auto wait = may_block ? kIdleWait : std::chrono::milliseconds(0);
    if (!retries_.empty()) {
      const auto next = std::ranges::min_element(retries_, {}, &Retry::at)->at;
      wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(next - now));
    }
    std::optional<JobPtr> popped = queue_.pop(std::max(wait, std::chrono::milliseconds(0)));
    if (!popped) break;
    may_block = false;
    if ((*popped)->request().is_embedding()) {
      // Embedding jobs take no slot: they are gathered and run together below, as one batch.
      embedding_tokens += (*popped)->request().embed_token_count();
      embeddings.push_back(std::move(*popped));
      if (embedding_tokens >= kEmbedBatchTokens) break;
      continue;
    }
    if (!begin(*popped, 1)) {
      holding_.store(1);
      held_ = Retry{now, std::move(*popped), 1};
    }
    jobs_taken_.fetch_add(1);  // after begin counted it busy or held (see jobs_taken())
  }
  if (!embeddings.empty()) run_embeddings(embeddings);
}

Scheduler::Slot& Scheduler::slot_for(const std::vector<Token>& prompt) {
  // The free slot whose cache shares the longest prefix with the prompt; among equals, an empty
  // one, else the one unused longest, so that the caches in use survive.
  Slot* best = nullptr;
  std::size_t best_shared = 0;
  for (auto& slot : slots_) {
    if (slot->busy()) continue;
    const std::size_t shared = common_prefix(slot->cache, prompt);
    const bool better =
        best == nullptr || shared > best_shared ||
        (shared == best_shared &&
         (slot->cache.empty() != best->cache.empty() ? slot->cache.empty()
                                                     : slot->last_used < best->last_used));
    if (better) {
      best = slot.get();
      best_shared = shared;
    }
  }
  return *best;
}

bool Scheduler::may_start(Job& job, Clock::time_point now) {
  if (job.cancelled()) {  // its client left while it waited; a shared job's store must see it end
    job.emit(ErrorEvent{"cancelled", "every client of this request left while it waited"});
    return false;
  }
  if (job.deadline() && now >= *job.deadline()) {
    job.emit(ErrorEvent{"deadline_exceeded", "the deadline passed while the request waited"});
    return false;
  }
  return true;
}

bool Scheduler::start_job(Slot& slot, JobPtr job, int attempt) {
  const Clock::time_point now = Clock::now();
  if (!may_start(*job, now)) return false;
  std::unique_ptr<Sampler> sampler;
  try {
    sampler = engine_.make_sampler(job->request().params.sampling);
  } catch (const std::exception& e) {
    job->emit(ErrorEvent{"engine_failure", e.what()});
    return false;
  }
  slot.job = std::move(job);
  const std::size_t keep = reuse_prefix(slot, slot.job->request().prompt_tokens);
  slot.sampler = std::move(sampler);
  slot.logprobs.clear();
  slot.text = TextStream(slot.job->request().params.stop);
  slot.cached = keep;
  slot.prompt_done = keep;
  slot.pos = static_cast<std::int32_t>(keep);
  slot.generated = 0;
  slot.events_sent = 0;
  slot.batch_index = -1;
  slot.started = now;
  slot.attempt = attempt;
  busy_slots_.fetch_add(1);
  if (options_.metrics != nullptr) {
    options_.metrics->queue_wait().observe(seconds_between(slot.job->arrived(), now));
  }
  slot.job->emit(StartedEvent{options_.worker_id, ms_between(slot.job->arrived(), now), attempt});
  return true;
}

std::size_t Scheduler::reuse_prefix(Slot& slot, const std::vector<Token>& prompt) {
  // All but the prompt's last token may come from a cache: decoding that one again gives the
  // logits of the first answer token.
  const std::size_t most = prompt.size() - 1;
  const std::size_t own = std::min(common_prefix(slot.cache, prompt), most);
  // Another slot, free or busy, may hold a longer prefix (a shared system prompt another
  // request brought in): its cells are copied over when that spares enough prefill to pay
  // for the copy, which is of the whole sequence buffer.
  const Slot* donor = nullptr;
  std::size_t donor_shared = 0;
  for (const auto& other : slots_) {
    if (other.get() == &slot) continue;
    const std::size_t shared = std::min(common_prefix(other->cache, prompt), most);
    if (shared > donor_shared) {
      donor = other.get();
      donor_shared = shared;
    }
  }
  if (donor != nullptr && donor_shared >= own + kMinCopyTokens) {
    const auto keep = static_cast<std::int32_t>(donor_shared);
    if (engine_.copy_slot_prefix(donor->id, slot.id, keep)) {
      slot.cache.assign(donor->cache.begin(), donor->cache.begin() + keep);
      return donor_shared;
    }
    spdlog::debug("slot {}: cannot copy the cache of slot {}; prefilling", slot.id, donor->id);
    slot.cache.clear();
    return 0;
  }
  if (own < slot.cache.size()) {
    if (!engine_.truncate_slot(slot.id, static_cast<std::int32_t>(own))) {
      engine_.clear_slot(slot.id);
      slot.cache.clear();
      return 0;
    }
    slot.cache.resize(own);
  }
  return own;
}

void Scheduler::drop_departed() {
  const Clock::time_point now = Clock::now();
  for (auto& slot : slots_) {
    if (!slot->busy()) continue;
    if (slot->job->cancelled()) {
      finish(*slot, "cancelled");
    } else if (slot->job->deadline() && now >= *slot->job->deadline()) {
      fail(*slot, "deadline_exceeded", "the request's deadline passed during generation");
    }
  }
}

std::vector<BatchEntry> Scheduler::build_batch() {
  // What each slot puts in the step: a generating sequence its next token (every stream moves
  // at every step), and prompt chunks the rest of the step's budget, oldest job first (by
  // arrival, not by slot: a prompt in a high slot must not wait behind every newer one that
  // lands in a lower slot), within the prefill budgets while others generate.
  std::size_t generating = 0;
  std::vector<Slot*> waiting;
  for (auto& slot : slots_) {
    slot->batch_index = -1;
    if (!slot->busy() || slot->awaiting_fork()) continue;
    if (slot->prefilling()) {
      waiting.push_back(slot.get());
    } else {
      ++generating;
    }
  }
  std::ranges::sort(waiting, {}, [](const Slot* slot) { return slot->job->arrived(); });
  const auto whole = static_cast<std::size_t>(engine_.batch_tokens());
  const std::size_t limit = std::min(
      whole, generating == 0 || waiting.empty() ? whole : generating + prefill_budget(generating, waiting.size()));
  std::vector<std::size_t> chunk(slots_.size(), 0);
  std::size_t taken = generating;
  std::size_t prefilling = 0;
  for (const Slot* slot : waiting) {
    const std::size_t left = slot->job->request().prompt_tokens.size() - slot->prompt_done;
    const std::size_t n = std::min(limit > taken ? limit - taken : 0, left);
    chunk[static_cast<std::size_t>(slot->id)] = n;
    taken += n;
    if (n > 0) ++prefilling;
  }
  // The entries go in slot order: llama.cpp splits a batch into micro-batches of sequences
  // with consecutive ids (a KV stream each, the same number of tokens from each), so a batch
  // in slot order needs the fewest (a micro-batch is a pass over all the weights).
  std::vector<BatchEntry> batch;
  batch.reserve(taken);
  for (auto& slot : slots_) {
    if (!slot->busy() || slot->awaiting_fork()) continue;
    if (!slot->prefilling()) {
      slot->batch_index = static_cast<std::int32_t>(batch.size());
      slot->cache.push_back(slot->last);
      batch.push_back({slot->last, slot->pos++, slot->id, true});
      continue;
    }
    const auto& prompt = slot->job->request().prompt_tokens;
    for (std::size_t k = 0; k < chunk[static_cast<std::size_t>(slot->id)]; ++k) {
      const bool last_of_prompt = slot->prompt_done + 1 == prompt.size();
      if (last_of_prompt) slot->batch_index = static_cast<std::int32_t>(batch.size());
      const Token token = prompt[slot->prompt_done++];
      slot->cache.push_back(token);
      batch.push_back({token, slot->pos++, slot->id, last_of_prompt});
    }
  }
  step_generating_ = generating;
  step_prompt_ = batch.size() - generating;
  step_prefilling_ = prefilling;
  return batch;
}

std::size_t Scheduler::consume_logits() {
  fork_choices();
  std::size_t sampled = 0;
  for (auto& slot : slots_) {
    if (!slot->busy() || slot->batch_index < 0) continue;
    ++sampled;
    const Token token = engine_.sample(*slot->sampler, slot->batch_index);
    const Clock::time_point now = Clock::now();
    if (slot->generated == 0) {
      slot->first_token = now;
      // A job's time to first token, once: its first choice's (the others' come with it).
      if (model_metrics_ && slot->choice == 0)
        model_metrics_->ttft.observe(seconds_between(slot->started, now));
    } else if (model_metrics_) {
      model_metrics_->inter_token.observe(seconds_between(slot->last_token, now));
    }
    slot->last_token = now;
    ++slot->generated;
    const std::optional<std::int32_t>& top = slot->job->request().params.top_logprobs;
    if (top && !engine_.is_end_of_generation(token)) {
      slot->logprobs.push_back(logprob_entry(token, engine_.logprobs(slot->batch_index, token, *top)));
    }
    emit_token(*slot, token, now);
  }
  return sampled;
}

LogprobEntry Scheduler::logprob_entry(Token token, const PositionLogprobs& at) const {
  LogprobEntry entry{engine_.token_piece(token), at.sampled, {}};
  for (const TokenLogprob& alt : at.top) entry.top.push_back({engine_.token_piece(alt.token), alt.logprob});
  return entry;
}

void Scheduler::emit_token(Slot& slot, Token token, Clock::time_point sampled) {
  if (engine_.is_end_of_generation(token)) return finish(slot, "stop");
  TextStream::Output out = slot.text.push(engine_.token_piece(token));
  if (!out.text.empty()) {
    slot.job->emit(TokenEvent{slot.events_sent++, std::move(out.text), sampled,
                              std::exchange(slot.logprobs, {}), slot.choice});
  }
  if (out.stopped) return finish(slot, "stop");
  const bool at_max = slot.generated >= slot.job->request().params.max_tokens;
  const bool context_full = slot.pos >= engine_.ctx_per_slot();
  if (at_max || context_full) return finish(slot, "length");
  slot.last = token;
}

void Scheduler::finish(Slot& slot, const char* finish_reason) {
  std::string rest = slot.text.finish();
  if (!rest.empty()) {
    slot.job->emit(TokenEvent{slot.events_sent++, std::move(rest), {},
                              std::exchange(slot.logprobs, {}), slot.choice});
  }
  // The entries of tokens whose text never went out (a stop string's) go with it.
  slot.logprobs.clear();
  if (slot.group) return finish_choice(slot, finish_reason);
  const Clock::time_point now = Clock::now();
  DoneEvent done;
  done.finish_reason = finish_reason;
  done.usage.prompt_tokens = static_cast<std::int64_t>(slot.job->request().prompt_tokens.size());
  done.usage.completion_tokens = slot.generated;
  done.usage.cached_tokens = static_cast<std::int64_t>(slot.cached);
  done.timings.queue_ms = ms_between(slot.job->arrived(), slot.started);
  done.timings.total_ms = ms_between(slot.job->arrived(), now);
  if (slot.generated > 0) {
    done.timings.ttft_ms = ms_between(slot.started, slot.first_token);
    const double decode_s = std::chrono::duration<double>(now - slot.first_token).count();
    if (slot.generated > 1 && decode_s > 0) {
      done.timings.decode_tokens_per_s = (slot.generated - 1) / decode_s;
    }
  }
  if (model_metrics_) {
    const double total_s = seconds_between(slot.job->arrived(), now);
    model_metrics_->duration.observe(total_s);
    model_metrics_->window.observe(total_s);
  }
  // Released before the last event goes out, so a client that sees `done` can count on the
  // slot being free for the next job (and on the token counters including its tokens).
  const JobPtr job = release(slot);
  job->emit(std::move(done));
}

void Scheduler::fail(Slot& slot, const char* code, const std::string& message) {
  spdlog::warn("job {} failed on slot {}: {} ({})", slot.job->id(), slot.id, code, message);
  const JobPtr job = slot.job;  // every choice of it ends
  for (auto& other : slots_)
    if (other->job == job) release(*other);
  job->emit(ErrorEvent{code, message});
}

JobPtr Scheduler::release(Slot& slot) {
  // Tokens are counted for every job that held a slot, whatever its end: they cost the work.
  if (model_metrics_) {
    // A later choice's prompt cells are its leader's: counted once.
    if (!slot.shares_prompt) {
      model_metrics_->prompt_tokens.inc(static_cast<double>(slot.prompt_done));
      model_metrics_->cache_hit_tokens.inc(static_cast<double>(slot.cached));
    }
    model_metrics_->generated_tokens.inc(slot.generated);
  }
  // The KV cells stay: the next job that shares a prefix with `cache` starts after it.
  slot.last_used = Clock::now();
  slot.sampler.reset();
  slot.batch_index = -1;
  slot.choice = 0;
  slot.leader = nullptr;
  slot.group.reset();
  slot.shares_prompt = false;
  busy_slots_.fetch_sub(1);
  return std::exchange(slot.job, nullptr);
}

}  // namespace llmq
