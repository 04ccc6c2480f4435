#include "queue/in_process_queue.h"

#include <algorithm>

namespace llmq {

InProcessQueue::InProcessQueue(std::int64_t capacity) : capacity_(capacity) {}

PushResult InProcessQueue::push(JobPtr job) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return PushResult::closed;
    if (static_cast<std::int64_t>(waiting_.size()) >= capacity_) return PushResult::full;
    seq_of_.emplace(job->id(), next_seq_);  // ids are unique (see Job)
    waiting_.push_back({next_seq_++, std::move(job)});
  }
  nonempty_.notify_one();
  return PushResult::accepted;
}

std::optional<JobPtr> InProcessQueue::pop(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  nonempty_.wait_for(lock, timeout, [&] { return !waiting_.empty() || closed_; });
  if (waiting_.empty()) return std::nullopt;
  JobPtr job = std::move(waiting_.front().job);
  waiting_.pop_front();
  seq_of_.erase(job->id());
  return job;
}

std::int64_t InProcessQueue::find_locked(const std::string& job_id) const {
  const auto it = seq_of_.find(job_id);
  if (it == seq_of_.end()) return -1;
  const auto pos = std::lower_bound(waiting_.begin(), waiting_.end(), it->second,
                                    [](const Entry& e, std::uint64_t seq) { return e.seq < seq; });
  return pos - waiting_.begin();
}

bool InProcessQueue::remove(const std::string& job_id) {
  std::lock_guard lock(mu_);
  const std::int64_t i = find_locked(job_id);
  if (i < 0) return false;
  waiting_.erase(waiting_.begin() + i);
  seq_of_.erase(job_id);
  return true;
}

std::optional<std::int64_t> InProcessQueue::position(const std::string& job_id) const {
  std::lock_guard lock(mu_);
  const std::int64_t i = find_locked(job_id);
  if (i < 0) return std::nullopt;
  return i;
}

std::int64_t InProcessQueue::depth() const {
  std::lock_guard lock(mu_);
  return static_cast<std::int64_t>(waiting_.size());
}

std::vector<WaitingJob> InProcessQueue::waiting(std::size_t limit) const {
  std::lock_guard lock(mu_);
  std::vector<WaitingJob> out;
  out.reserve(std::min(limit, waiting_.size()));
  for (const Entry& entry : waiting_) {
    if (out.size() == limit) break;
    const Job& job = *entry.job;
    out.push_back({job.id(), job.request().model, static_cast<std::int64_t>(out.size()),
                   job.arrived()});
  }
  return out;
}

void InProcessQueue::for_each_waiting(const std::function<void(const JobPtr&)>& visit) const {
  std::lock_guard lock(mu_);
  for (const Entry& entry : waiting_) visit(entry.job);
}

void InProcessQueue::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  nonempty_.notify_all();
}

}  // namespace llmq
