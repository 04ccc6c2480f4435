// Scheduler::run_embeddings: embedding jobs, which take no slot (engine/scheduler.h).
#include "engine/elapsed.h"
#include "engine/scheduler.h"

namespace llmq {

void Scheduler::run_embeddings(std::vector<JobPtr>& jobs) {
  const Clock::time_point began = Clock::now();
  std::vector<JobPtr> running;
  std::vector<std::vector<Token>> inputs;
  for (JobPtr& job : jobs) {
    if (!may_start(*job, began)) {
      jobs_taken_.fetch_add(1);
      continue;
    }
    if (options_.metrics != nullptr) {
      options_.metrics->queue_wait().observe(seconds_between(job->arrived(), began));
    }
    job->emit(StartedEvent{options_.worker_id, ms_between(job->arrived(), began), 1});
    for (const std::vector<Token>& input : job->request().embed_tokens) inputs.push_back(input);
    running.push_back(std::move(job));
  }
  jobs.clear();
  if (running.empty()) return;
  const auto held = static_cast<std::int32_t>(running.size());
  embedding_jobs_.fetch_add(held);  // held while they run, as a slot's job is (held_jobs())
  const std::vector<std::vector<float>> vectors = engine_.embed(inputs);
  const Clock::time_point now = Clock::now();
  std::size_t next = 0;
  for (const JobPtr& job : running) {
    const std::size_t count = job->request().embed_tokens.size();
    const std::size_t tokens = job->request().embed_token_count();
    if (model_metrics_) model_metrics_->prompt_tokens.inc(static_cast<double>(tokens));
    if (vectors.size() != inputs.size()) {
      job->emit(ErrorEvent{"engine_failure", "the model could not embed the inputs"});
      continue;
    }
    for (std::size_t i = 0; i < count; ++i) {
      job->emit(EmbeddingEvent{static_cast<std::int32_t>(i), vectors[next + i]});
    }
    next += count;
    DoneEvent done;
    done.finish_reason = "stop";
    done.usage.prompt_tokens = static_cast<std::int64_t>(tokens);
    done.timings.queue_ms = ms_between(job->arrived(), began);
    done.timings.total_ms = ms_between(job->arrived(), now);
    if (model_metrics_) {
      const double total_s = seconds_between(job->arrived(), now);
      model_metrics_->duration.observe(total_s);
      model_metrics_->window.observe(total_s);
    }
    job->emit(std::move(done));
  }
  jobs_taken_.fetch_add(running.size());  // before they stop counting as held: never dips
  embedding_jobs_.fetch_sub(held);
}

}  // namespace llmq
