#include "telemetry/elastic_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "util/thread_priority.h"

namespace llmq::telemetry {
namespace {

// What a record adds to a _bulk body, near enough to cap batches by bytes.
std::size_t record_bytes(const SpoolRecord& r) {
  return r.doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size() + r.id.size() +
         r.stream.size() + 48;
}

}  // namespace

ElasticSink::ElasticSink(ElasticSinkOptions options)
    : options_(std::move(options)),
      spool_(options_.spool),
      dead_letter_(options_.dead_letter_path),
      client_(options_.elastic),
      worker_([this] { run(); }) {}

ElasticSink::~ElasticSink() { close(); }

void ElasticSink::submit(std::string stream, std::string id, nlohmann::json document) {
  Pending pending{SpoolRecord{std::move(stream), std::move(id), std::move(document)}, 0, Clock::now()};
  pending.bytes = record_bytes(pending.record);
  {
    std::lock_guard lock(mutex_);
    if (!closing_ && queue_.size() < options_.queue_cap) {
      queued_bytes_ += pending.bytes;
      queue_.push_back(std::move(pending));
      work_cv_.notify_one();
      return;
    }
  }
  // Full queue (Elasticsearch slower than the requests) or closed: the disk takes it.
  to_spool({std::move(pending.record)});
}

bool ElasticSink::flush(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  ++flush_waiters_;
  work_cv_.notify_one();
  const bool done = idle_cv_.wait_until(lock, deadline, [&] {
    return queue_.empty() && !busy_ && spool_.empty();
  });
  --flush_waiters_;
  return done;
}

void ElasticSink::close() {
  {
    std::lock_guard lock(mutex_);
    if (closing_) return;
    closing_ = true;
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  spill_queue();
  spool_.sync();
  std::lock_guard lock(mutex_);
  closed_ = true;
  idle_cv_.notify_all();
}

ElasticSinkStats ElasticSink::stats() const {
  return {stored_.load(), dead_lettered_.load(), spooled_.load(), failed_batches_.load(), lost_.load()};
}

bool ElasticSink::ready_locked(Clock::time_point now) const {
  if (spool_.documents() > 0) return true;
  if (queue_.empty()) return false;
  return flush_waiters_ > 0 || queue_.size() >= options_.batch_documents ||
         queued_bytes_ >= options_.batch_bytes || now - queue_.front().at >= options_.batch_interval;
}

ElasticSink::Clock::time_point ElasticSink::wake_at_locked(Clock::time_point now) const {
  if (queue_.empty()) return now + std::chrono::hours(1);  // a submit or flush notifies
  return queue_.front().at + options_.batch_interval;
}

void ElasticSink::run() {
  name_this_thread("llmq-ship");
  lower_this_thread_priority(options_.nice, "the Elasticsearch shipper");
  std::unique_lock lock(mutex_);
  while (!closing_) {
    const auto now = Clock::now();
    if (now < retry_at_) {
      // Backing off: what arrives meanwhile goes to the spool, behind what failed before it.
      if (!queue_.empty()) {
        lock.unlock();
        spill_queue();
        lock.lock();
        continue;
      }
      work_cv_.wait_until(lock, retry_at_, [&] { return closing_ || !queue_.empty(); });
      continue;
    }
    if (!ready_locked(now)) {
      work_cv_.wait_until(lock, wake_at_locked(now), [&] { return closing_ || ready_locked(Clock::now()); });
      continue;
    }
    busy_ = true;
    lock.unlock();
    const bool ok = step();
    lock.lock();
    busy_ = false;
    if (ok) {
      if (attempt_ > 0) spdlog::info("elasticsearch: delivering again after {} failed attempts", attempt_);
      attempt_ = 0;
      retry_at_ = {};
    } else {
      retry_at_ = Clock::now() + next_backoff();
    }
    idle_cv_.notify_all();
  }
}

// One round: the spool first (older documents), else one batch from the queue. False when
// Elasticsearch could not take it: the caller backs off.
bool ElasticSink::step() {
  if (!prepared_) {
    if (options_.prepare && !options_.prepare(client_)) return false;
    prepared_ = true;
  }
  if (spool_.documents() > 0) {
    spill_queue();
    return replay_spool();
  }
  return ship_queue();
}

bool ElasticSink::replay_spool() {
  spool_.seal();
  while (const auto seq = spool_.oldest_sealed()) {
    auto records = spool_.read(*seq);
    std::size_t next = 0;
    while (next < records.size()) {
      std::vector<SpoolRecord> batch;
      std::size_t bytes = 0;
      while (next < records.size() && batch.size() < options_.batch_documents &&
             (batch.empty() || bytes < options_.batch_bytes)) {
        bytes += record_bytes(records[next]);
        batch.push_back(std::move(records[next++]));
      }
      // A partial failure keeps the whole segment: re-sent documents come back 409 = stored.
      if (!ship(batch, nullptr)) return false;
    }
    spool_.remove(*seq);
    std::lock_guard lock(mutex_);
    if (closing_) return true;  // the rest stays spooled for the next start
  }
  return true;
}

bool ElasticSink::ship_queue() {
  std::vector<SpoolRecord> batch;
  {
    std::lock_guard lock(mutex_);
    std::size_t bytes = 0;
    while (!queue_.empty() && batch.size() < options_.batch_documents &&
           (batch.empty() || bytes < options_.batch_bytes)) {
      bytes += queue_.front().bytes;
      queued_bytes_ -= queue_.front().bytes;
      batch.push_back(std::move(queue_.front().record));
      queue_.pop_front();
    }
  }
  if (batch.empty()) return true;
  std::vector<SpoolRecord> failed;
  if (ship(batch, &failed)) return true;
  to_spool(failed);
  return false;
}

// Sends one batch; stored and refused documents are settled here. True when none needs a
// retry; otherwise those are appended to `failed` (when given).
bool ElasticSink::ship(std::vector<SpoolRecord>& records, std::vector<SpoolRecord>* failed) {
  const auto results = client_.bulk(records);
  bool all_settled = true;
  std::string first_reason;
  for (std::size_t i = 0; i < records.size(); ++i) {
    switch (results[i].outcome) {
      case ItemOutcome::stored:
        ++stored_;
        break;
      case ItemOutcome::rejected:
        dead_letter_.write(records[i], results[i].status, results[i].reason);
        ++dead_lettered_;
        break;
      case ItemOutcome::retry:
        if (all_settled) first_reason = results[i].reason;
        all_settled = false;
        if (failed) failed->push_back(std::move(records[i]));
        break;
    }
  }
  if (!all_settled) {
    ++failed_batches_;
    // Warn once per outage; the retries that follow it are debug noise.
    const auto level = attempt_ == 0 ? spdlog::level::warn : spdlog::level::debug;
    spdlog::log(level, "elasticsearch: batch of {} not delivered, spooling and retrying: {}", records.size(),
                first_reason);
  }
  return all_settled;
}

void ElasticSink::spill_queue() {
  std::vector<SpoolRecord> records;
  {
    std::lock_guard lock(mutex_);
    records.reserve(queue_.size());
    for (auto& pending : queue_) records.push_back(std::move(pending.record));
    queue_.clear();
    queued_bytes_ = 0;
  }
  if (!records.empty()) to_spool(records);
}

void ElasticSink::to_spool(const std::vector<SpoolRecord>& records) {
  if (records.empty()) return;
  try {
    spool_.append(records);
    spooled_ += records.size();
  } catch (const std::exception& e) {
    lost_ += records.size();
    spdlog::error("elasticsearch: {} documents lost, the spool cannot take them: {}", records.size(), e.what());
  }
}

// Exponential backoff with full jitter: a uniform wait in [0, min(max, initial * 2^attempt)],
// so many llmq instances recovering together do not hit Elasticsearch in step.
std::chrono::milliseconds ElasticSink::next_backoff() {
  const int exponent = std::min(attempt_, 20);
  ++attempt_;
  const auto ceiling = std::min<std::int64_t>(options_.backoff_max.count(),
                                              options_.backoff_initial.count() << exponent);
  std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(1, ceiling));
  return std::chrono::milliseconds(pick(rng_));
}

}  // namespace llmq::telemetry
