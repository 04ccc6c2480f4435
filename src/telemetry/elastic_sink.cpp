#include "telemetry/elastic_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "util/thread_priority.h"

namespace llmq::telemetry {
namespace {

constexpr auto kJournalRotation = std::chrono::seconds(1);

// The spool of a sink rolls its segments on the sink's own thread, never in a submit().
SpoolOptions rolled_by_owner(SpoolOptions options) {
  options.roll_in_append = false;
  return options;
}

// What a record adds to a _bulk body, near enough to cap batches by bytes.
std::size_t record_bytes(const SpoolRecord& r) {
  return r.doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size() + r.id.size() +
         r.stream.size() + 48;
}

}  // namespace

ElasticSink::ElasticSink(ElasticSinkOptions options)
    : options_(std::move(options)),
      spool_(rolled_by_owner(options_.spool)),
      journal_(options_.spool.dir / "journal"),
      dead_letter_(options_.dead_letter_path, options_.dead_letter_max_bytes),
      client_(options_.elastic),
      worker_([this] { run(); }) {}

ElasticSink::~ElasticSink() { close(); }

void ElasticSink::submit(std::string stream, std::string id, nlohmann::json document) {
  Pending pending{SpoolRecord{std::move(stream), std::move(id), std::move(document)}, 0, Clock::now()};
  // Serialised once: the journal's line, and the measure of the document in a _bulk body.
  const std::string line = Journal::line_of(pending.record);
  pending.bytes = line.size() + 16;
  std::uint64_t file = 0;
  try {
    file = journal_.append_line(line);  // outside the sink's lock: the shipper never waits on it
  } catch (const std::exception& e) {  // still shipped; only a kill could lose it now
    spdlog::error("journal: document {} not written ahead: {}", pending.record.id, e.what());
  }
  {
    std::lock_guard lock(mutex_);
    if (!closing_ && queue_.size() < options_.queue_cap) {
      pending.journal_file = file;
      queued_bytes_ += pending.bytes;
      queue_.push_back(std::move(pending));
      work_cv_.notify_one();
      return;
    }
  }
  // Full queue (Elasticsearch slower than the requests) or closed: the disk takes it.
  to_spool({std::move(pending.record)});
  if (file != 0) journal_.settled(file);
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
  journal_.rotate();  // everything is settled now: the journal empties
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
  // At the latest when the journal is due a rotation (a submit or a flush notifies sooner).
  const Clock::time_point chores = now + kJournalRotation;
  if (queue_.empty()) return chores;
  return std::min(chores, queue_.front().at + options_.batch_interval);
}

void ElasticSink::take_journal_leftovers() {
  std::vector<SpoolRecord> left = journal_.leftovers();
  if (!left.empty()) {
    spdlog::warn("journal: {} documents of a process that did not end cleanly go to the spool",
                 left.size());
    to_spool(left);
    spool_.sync();
  }
  journal_.drop_leftovers();
}

void ElasticSink::keep_disk() {
  spool_.maintain();
  const auto now = Clock::now();
  if (now - rotated_at_ >= kJournalRotation) {
    journal_.rotate();
    rotated_at_ = now;
  }
}

void ElasticSink::run() {
  name_this_thread("llmq-ship");
  lower_this_thread_priority(options_.nice, "the Elasticsearch shipper");
  take_journal_leftovers();
  std::unique_lock lock(mutex_);
  while (!closing_) {
    lock.unlock();
    keep_disk();
    lock.lock();
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
  Taken taken;
  {
    std::lock_guard lock(mutex_);
    std::size_t bytes = 0;
    while (!queue_.empty() && taken.records.size() < options_.batch_documents &&
           (taken.records.empty() || bytes < options_.batch_bytes)) {
      bytes += queue_.front().bytes;
      queued_bytes_ -= queue_.front().bytes;
      taken.records.push_back(std::move(queue_.front().record));
      taken.journal_files.push_back(queue_.front().journal_file);
      queue_.pop_front();
    }
  }
  if (taken.records.empty()) return true;
  std::vector<SpoolRecord> failed;
  const bool ok = ship(taken.records, &failed);
  to_spool(failed);
  settle(taken.journal_files);  // stored, dead-lettered or spooled: each is safe elsewhere now
  return ok;
}

void ElasticSink::settle(const std::vector<std::uint64_t>& journal_files) {
  for (std::uint64_t file : journal_files)
    if (file != 0) journal_.settled(file);
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
  Taken taken;
  {
    std::lock_guard lock(mutex_);
    taken.records.reserve(queue_.size());
    for (auto& pending : queue_) {
      taken.records.push_back(std::move(pending.record));
      taken.journal_files.push_back(pending.journal_file);
    }
    queue_.clear();
    queued_bytes_ = 0;
  }
  if (taken.records.empty()) return;
  to_spool(taken.records);
  settle(taken.journal_files);
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
