#include "api/job_follower.h"

#include <algorithm>

namespace llmq {
namespace {

std::int64_t ms_since(Clock::time_point from, Clock::time_point now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - from).count();
}

}  // namespace

JobFollower::JobFollower(JobPtr job, std::shared_ptr<EventChannel> channel, JobProducer& queue,
                         std::chrono::milliseconds ping_interval)
    : job_(std::move(job)),
      channel_(std::move(channel)),
      queue_(queue),
      ping_interval_(ping_interval),
      last_event_(Clock::now()) {}

QueuedEvent JobFollower::queued() const {
  const std::int64_t position = queue_.position(job_->id()).value_or(0);
  return {job_->id(), position, std::max(queue_.depth(), position + 1)};
}

boost::asio::awaitable<JobEvent> JobFollower::next() {
  while (true) {
    Clock::time_point wake = last_event_ + ping_interval_;
    if (watch_deadline_ && !started_ && job_->deadline()) wake = std::min(wake, *job_->deadline());

    std::optional<JobEvent> event = co_await channel_->next(wake);
    const Clock::time_point now = Clock::now();
    if (event) {
      if (std::holds_alternative<StartedEvent>(*event)) {
        started_ = true;
        started_at_ = now;
      }
      finished_ = std::holds_alternative<DoneEvent>(*event) ||
                  std::holds_alternative<ErrorEvent>(*event);
      if (const auto* error = std::get_if<ErrorEvent>(&*event)) error_code_ = error->code;
      last_event_ = now;
      co_return std::move(*event);
    }
    // A job that times out while waiting leaves the queue here, and its last event goes through
    // its sink like any other, so every client of a shared job (Idempotency-Key) gets it; once
    // a worker holds the job, the worker enforces the deadline.
    if (watch_deadline_ && !started_ && job_->deadline() && now >= *job_->deadline()) {
      // Whoever holds the job now (a worker, or nobody: it ended) sends its last event; a
      // deadline in the past must not keep waking this loop.
      watch_deadline_ = false;
      if (queue_.remove(job_->id()))
        job_->emit(ErrorEvent{"deadline_exceeded", "the deadline passed while the request waited"});
      continue;
    }
    if (now >= last_event_ + ping_interval_) {
      last_event_ = now;
      co_return ping(now);
    }
  }
}

PingEvent JobFollower::ping(Clock::time_point now) const {
  if (started_) return {true, 0, ms_since(started_at_, now)};
  return {false, queue_.position(job_->id()).value_or(0), ms_since(job_->arrived(), now)};
}

void JobFollower::abandon() {
  job_->cancel();
  // Taken out of the queue here, the job will never reach a worker: it ends now. Otherwise a
  // worker holds it and ends it (scheduler: at its start, or at the next decode step).
  if (queue_.remove(job_->id()))
    job_->emit(ErrorEvent{"cancelled", "every client of this request left while it waited"});
  else
    queue_.stop(*job_);
}

}  // namespace llmq
