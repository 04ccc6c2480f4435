#include "api/idempotency.h"

#include <algorithm>
#include <variant>

namespace llmq {

void Fanout::on_event(JobEvent event) {
  std::lock_guard lock(mutex_);
  const bool last = std::holds_alternative<DoneEvent>(event) || std::holds_alternative<ErrorEvent>(event);
  for (const auto& sink : sinks_) sink->on_event(event);
  events_.push_back(std::move(event));
  if (last) {
    finished_ = true;
    finished_at_ = Clock::now();
  }
}

void Fanout::attach(const std::shared_ptr<JobSink>& sink) {
  std::lock_guard lock(mutex_);
  for (const JobEvent& event : events_) sink->on_event(event);
  sinks_.push_back(sink);
}

bool Fanout::detach(const JobSink* sink) {
  std::lock_guard lock(mutex_);
  std::erase_if(sinks_, [&](const auto& s) { return s.get() == sink; });
  return sinks_.empty() && !finished_;
}

bool Fanout::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  return std::ranges::all_of(key, [](char c) { return c > 0x20 && c < 0x7f; });
}

void IdempotencyStore::expire_locked(Clock::time_point now) {
  const auto finished_at = [](const Entry& e) {
    std::lock_guard lock(e.fanout->mutex_);
    return e.fanout->finished_at_;
  };
  std::erase_if(entries_, [&](const auto& item) {
    const auto at = finished_at(item.second);
    return at && now - *at > options_.ttl;
  });
  while (entries_.size() >= options_.max_entries) {  // the oldest finished one goes
    auto oldest = entries_.end();
    std::optional<Clock::time_point> oldest_at;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      const auto at = finished_at(it->second);
      if (at && (!oldest_at || *at < *oldest_at)) {
        oldest = it;
        oldest_at = at;
      }
    }
    if (oldest == entries_.end()) break;  // all running: the cap gives way to correctness
    entries_.erase(oldest);
  }
}

std::variant<IdempotencyStore::Attached, IdempotencyStore::BodyMismatch, JobPtr>
IdempotencyStore::submit(const std::string& scope, const std::string& key, std::size_t body_hash,
                         const Create& create) {
  std::lock_guard lock(mutex_);
  expire_locked(Clock::now());
  const std::string id = scope + '\n' + key;
  if (auto it = entries_.find(id); it != entries_.end()) {
    if (it->second.body_hash != body_hash) return BodyMismatch{};
    return Attached{it->second.job, it->second.fanout};
  }
  auto fanout = std::make_shared<Fanout>();
  JobPtr job = create(fanout);
  if (job) entries_.emplace(id, Entry{job, fanout, body_hash});
  return job;
}

std::size_t IdempotencyStore::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace llmq
