#include "queue/model_queues.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>

namespace llmq {

ModelQueues::ModelQueues(const std::vector<std::string>& models, std::int64_t capacity,
                         std::function<void(const std::string& model)> on_push)
    : capacity_(capacity), models_(models), on_push_(std::move(on_push)) {
  if (models.empty()) throw std::invalid_argument("ModelQueues: no model");
  for (const std::string& model : models) {
    // Each partition could take the whole capacity; the shared bound is checked in push().
    auto [it, added] = partitions_.emplace(model, std::make_unique<InProcessQueue>(capacity));
    if (!added) throw std::invalid_argument("ModelQueues: model " + model + " named twice");
  }
}

InProcessQueue& ModelQueues::partition(const std::string& model) const {
  return *partitions_.at(model);
}

PushResult ModelQueues::push(JobPtr job) {
  const std::string model = job->request().model;
  const auto it = partitions_.find(model);
  if (it == partitions_.end())
    throw std::invalid_argument("ModelQueues: a job for model '" + model + "', not served here");
  {
    std::lock_guard lock(push_mu_);
    if (closed_) return PushResult::closed;
    if (depth() >= capacity_) return PushResult::full;
    const PushResult pushed = it->second->push(std::move(job));
    if (pushed != PushResult::accepted) return pushed;
  }
  if (on_push_) on_push_(model);
  return PushResult::accepted;
}

bool ModelQueues::remove(const std::string& job_id) {
  for (auto& [model, queue] : partitions_) {
    if (queue->remove(job_id)) return true;
  }
  return false;
}

std::optional<std::int64_t> ModelQueues::position(const std::string& job_id) const {
  for (const auto& [model, queue] : partitions_) {
    if (std::optional<std::int64_t> position = queue->position(job_id)) return position;
  }
  return std::nullopt;
}

std::int64_t ModelQueues::depth() const {
  std::int64_t total = 0;
  for (const auto& [model, queue] : partitions_) total += queue->depth();
  return total;
}

std::vector<WaitingJob> ModelQueues::waiting(std::size_t limit) const {
  // The oldest `limit` over all partitions are among each partition's oldest `limit`.
  std::vector<WaitingJob> out;
  for (const auto& [model, queue] : partitions_) {
    std::vector<WaitingJob> part = queue->waiting(limit);
    out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  std::ranges::stable_sort(out, {}, &WaitingJob::arrived);
  if (out.size() > limit) out.resize(limit);
  return out;
}

void ModelQueues::close() {
  {
    std::lock_guard lock(push_mu_);
    closed_ = true;
  }
  for (auto& [model, queue] : partitions_) queue->close();
}

std::vector<JobPtr> ModelQueues::drain() {
  std::vector<JobPtr> jobs;
  for (const std::string& model : models_) {
    InProcessQueue& queue = *partitions_.at(model);
    while (std::optional<JobPtr> job = queue.pop(std::chrono::milliseconds(0)))
      jobs.push_back(std::move(*job));
  }
  return jobs;
}

}  // namespace llmq
