// Idempotency-Key: one inference per key, however many times a client (re)sends the request.
//
// A request with `Idempotency-Key: <key>` whose key is new runs as usual, but its events go
// through a Fanout that keeps them. A later request with the same key (from the same client:
// keys are scoped by API key or address) attaches to that job: it is sent every event so far,
// then the rest as they come; once the job finished, it gets the stored answer, until the entry
// expires (`ttl`). The same key with a different body (SHA-256 of route and body) is refused
// (422), as Stripe and others do. A job shared by several requests is cancelled only when its
// last client leaves.
//
// A job that died for want of clients (cancelled: every client left) is no answer to keep: its
// entry is dropped, and a retry with the key starts the job again. A finished job keeps only its
// answer (its token texts joined into one event), and the store is bounded by entries and by
// the bytes those answers hold, the oldest finished entries going first.
//
// Thread-safe: one mutex for the store (held while the first request queues its job, so 50
// concurrent requests with one key make exactly one job) and one per Fanout.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "queue/job.h"

namespace llmq {

// A JobSink that keeps a job's events and forwards them to every attached sink.
class Fanout final : public JobSink {
 public:
  // Worker thread.
  void on_event(JobEvent event) override;

  // Sends `sink` every event so far, then the following ones.
  void attach(const std::shared_ptr<JobSink>& sink);
  // `sink` left; true when it was the last one and the job has not finished (cancel it).
  bool detach(const JobSink* sink);
  bool finished() const;
  // Bytes the kept events hold (their texts, plus a fixed cost per event).
  std::size_t bytes() const;

 private:
  mutable std::mutex mutex_;
  std::vector<JobEvent> events_;                  // everything the job sent; compacted at its end
  std::vector<std::shared_ptr<JobSink>> sinks_;   // the attached clients
  std::size_t bytes_ = 0;                         // what events_ holds, see bytes()
  bool finished_ = false;
  std::optional<Clock::time_point> finished_at_;  // for the store's TTL
  friend class IdempotencyStore;
};

struct IdempotencyOptions {
  std::chrono::seconds ttl{600};       // how long a finished job's answer is kept
  std::size_t max_entries = 10000;     // past it, the oldest finished entries go first
  std::size_t max_bytes = 64u << 20;   // the same, for the bytes of kept answers
};

class IdempotencyStore {
 public:
  explicit IdempotencyStore(IdempotencyOptions options) : options_(options) {}

  struct Attached {
    JobPtr job;
    std::shared_ptr<Fanout> fanout;
  };
  struct BodyMismatch {};
  // The outcome for a request: attach to an earlier job, refuse (same key, other body), or run
  // (nullopt from `create`, which was called under the lock: make the job with the fanout and
  // queue it; return it, or nullptr if it was not queued). `body_digest` names what was asked
  // (see request_digest()).
  using Create = std::function<JobPtr(std::shared_ptr<Fanout> fanout)>;
  std::variant<Attached, BodyMismatch, JobPtr> submit(const std::string& scope,
                                                      const std::string& key,
                                                      const std::string& body_digest,
                                                      const Create& create);
  std::size_t size() const;

 private:
  struct Entry {
    JobPtr job;
    std::shared_ptr<Fanout> fanout;
    std::string body_digest;
  };
  void expire_locked(Clock::time_point now);

  const IdempotencyOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // by scope + '\n' + key
};

// A usable key: 1-255 printable ASCII characters.
bool valid_idempotency_key(std::string_view key);

// What an idempotent request asked for: SHA-256 of its route and body, the same in every
// process and build.
std::string request_digest(std::string_view route, std::string_view body);

}  // namespace llmq
