#include "api/idempotency.h"

#include <algorithm>
#include <optional>
#include <variant>

#include "util/sha256.h"

namespace llmq {
namespace {

constexpr std::size_t kEventOverhead = 64;  // a kept event's own size, roughly
constexpr std::size_t kLogprobBytes = 512;  // a token's log-probability entry, roughly

std::size_t event_bytes(const JobEvent& event) {
  if (const auto* token = std::get_if<TokenEvent>(&event)) {
    return kEventOverhead + token->text.size() + token->logprobs.size() * kLogprobBytes;
  }
  if (const auto* embedding = std::get_if<EmbeddingEvent>(&event)) {
    return kEventOverhead + embedding->embedding.size() * sizeof(float);
  }
  if (const auto* error = std::get_if<ErrorEvent>(&event))
    return kEventOverhead + error->code.size() + error->message.size();
  return kEventOverhead;
}

bool is_last(const JobEvent& event) {
  return std::holds_alternative<DoneEvent>(event) || std::holds_alternative<ErrorEvent>(event);
}

// A finished job's events as a late client needs them: every event but the tokens, and each
// choice's texts as one token event in their place.
std::vector<JobEvent> compacted(std::vector<JobEvent> events) {
  std::vector<JobEvent> out;
  std::vector<std::optional<TokenEvent>> texts;  // by choice
  const auto flush = [&] {
    for (std::optional<TokenEvent>& text : texts)
      if (text) out.emplace_back(std::move(*text));
    texts.clear();
  };
  for (JobEvent& event : events) {
    if (auto* token = std::get_if<TokenEvent>(&event)) {
      const auto choice = static_cast<std::size_t>(token->choice);
      if (texts.size() <= choice) texts.resize(choice + 1);
      std::optional<TokenEvent>& text = texts[choice];
      if (!text) {
        text = TokenEvent{0, std::move(token->text), {}, std::move(token->logprobs), token->choice};
      } else {
        text->text += token->text;
        for (LogprobEntry& entry : token->logprobs) text->logprobs.push_back(std::move(entry));
      }
      continue;
    }
    if (is_last(event)) flush();
    out.push_back(std::move(event));
  }
  flush();
  return out;
}

}  // namespace

void Fanout::on_event(JobEvent event) {
  std::lock_guard lock(mutex_);
  const bool last = is_last(event);
  for (const auto& sink : sinks_) sink->on_event(event);
  bytes_ += event_bytes(event);
  events_.push_back(std::move(event));
  if (last) {
    finished_ = true;
    finished_at_ = Clock::now();
    events_ = compacted(std::move(events_));
    bytes_ = 0;
    for (const JobEvent& kept : events_) bytes_ += event_bytes(kept);
  }
}

void Fanout::attach(const std::shared_ptr<JobSink>& sink) {
  std::lock_guard lock(mutex_);
  for (JobEvent event : events_) {
    // A replayed token was not just sampled: keep it out of the flush-time histogram.
    if (auto* token = std::get_if<TokenEvent>(&event)) token->sampled = {};
    sink->on_event(std::move(event));
  }
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

std::size_t Fanout::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  return std::ranges::all_of(key, [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string request_digest(std::string_view route, std::string_view body) {
  std::string what;
  what.reserve(route.size() + 1 + body.size());
  what.append(route).append(1, '\n').append(body);
  return sha256_hex(what);
}

void IdempotencyStore::expire_locked(Clock::time_point now) {
  const auto finished_at = [](const Entry& e) {
    std::lock_guard lock(e.fanout->mutex_);
    return e.fanout->finished_at_;
  };
  // Gone: answers past their TTL, and jobs that died because every client left (no answer).
  std::erase_if(entries_, [&](const auto& item) {
    if (item.second.job->cancelled()) return true;
    const auto at = finished_at(item.second);
    return at && now - *at > options_.ttl;
  });
  std::size_t bytes = 0;
  for (const auto& [id, entry] : entries_) bytes += id.size() + entry.fanout->bytes();
  // Over a cap, the oldest finished entry goes; running ones stay (they are bounded by the
  // queue and the slots), so the cap gives way to correctness.
  while (entries_.size() >= options_.max_entries || bytes > options_.max_bytes) {
    auto oldest = entries_.end();
    std::optional<Clock::time_point> oldest_at;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      const auto at = finished_at(it->second);
      if (at && (!oldest_at || *at < *oldest_at)) {
        oldest = it;
        oldest_at = at;
      }
    }
    if (oldest == entries_.end()) break;
    bytes -= oldest->first.size() + oldest->second.fanout->bytes();
    entries_.erase(oldest);
  }
}

std::variant<IdempotencyStore::Attached, IdempotencyStore::BodyMismatch, JobPtr>
IdempotencyStore::submit(const std::string& scope, const std::string& key,
                         const std::string& body_digest, const Create& create) {
  std::lock_guard lock(mutex_);
  expire_locked(Clock::now());
  const std::string id = scope + '\n' + key;
  if (auto it = entries_.find(id); it != entries_.end()) {
    if (it->second.body_digest != body_digest) return BodyMismatch{};
    return Attached{it->second.job, it->second.fanout};
  }
  auto fanout = std::make_shared<Fanout>();
  JobPtr job = create(fanout);
  if (job) entries_.emplace(id, Entry{job, fanout, body_digest});
  return job;
}

std::size_t IdempotencyStore::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace llmq
