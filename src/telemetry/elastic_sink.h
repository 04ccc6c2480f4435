// The EventSink that ships documents to Elasticsearch with `_bulk` create actions.
//
// Path of a document: submit() → the journal (a write-ahead copy on disk, telemetry/journal.h,
// so that a killed process loses none of what it held in memory) and a bounded in-memory queue
// (past `queue_cap`: straight to the spool) → a batch, sent when it reaches `batch_documents` or `batch_bytes`, or when its oldest
// document has waited `batch_interval` → stored (or already there: 409), dead-lettered (refused
// for a reason a retry cannot fix), or retried. A failed batch (network error, timeout, 429,
// 5xx) goes to the spool and the sink backs off, exponentially with full jitter. While anything
// is spooled, new documents join the spool behind it, and the spool is replayed oldest segment
// first; a segment is deleted only once every document in it is stored or dead-lettered, so a
// crash mid-replay re-sends it (create + the request id make that harmless).
//
// Memory is bounded whatever Elasticsearch does: the queue (`queue_cap` documents), one batch
// in flight and one spool segment being replayed. Order is kept except for documents that
// overflow a full queue while Elasticsearch is slow, which reach the spool ahead of the queue.
//
// Threading: one background thread (at `nice`) owns the client, batching and backoff. submit()
// takes the sink's mutex briefly (an overflow also appends to the spool, which has its own
// mutex); flush() and close() are for the owner; close() waits for a batch in flight, so for up to
// `elastic.request_timeout`. Lock order: sink mutex, then the spool's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "telemetry/dead_letter.h"
#include "telemetry/elastic_client.h"
#include "telemetry/event_sink.h"
#include "telemetry/journal.h"
#include "telemetry/spool.h"

namespace llmq::telemetry {

struct ElasticSinkOptions {
  ElasticConfig elastic;
  SpoolOptions spool;
  std::filesystem::path dead_letter_path;  // e.g. <spool dir>/../dead-letter.ndjson
  std::uint64_t dead_letter_max_bytes = 64ull << 20;  // then it rotates (DeadLetterFile)
  std::size_t queue_cap = 10000;           // documents held in memory before the spool
  std::size_t batch_documents = 500;
  std::size_t batch_bytes = 5u << 20;
  std::chrono::milliseconds batch_interval{1000};
  std::chrono::milliseconds backoff_initial{250};
  std::chrono::milliseconds backoff_max{30000};
  // The worker thread's niceness (serve: --worker-nice, as the decode threads). Shipping yields
  // the CPU to the HTTP threads. Not lower than decoding: a shipper starved while it holds the
  // sink's or the spool's lock would stall the submit() of a request in turn.
  int nice = 0;
  // Runs on the worker before the first document is shipped, and again after a failure until it
  // succeeds (serve --elastic-setup installs the index templates here, so no document can create
  // a data stream without them). False: back off as after a failed batch; documents wait.
  std::function<bool(ElasticClient&)> prepare;
};

struct ElasticSinkStats {
  std::uint64_t stored = 0;         // acknowledged by Elasticsearch (409s included)
  std::uint64_t dead_lettered = 0;  // refused, written to the dead-letter file
  std::uint64_t spooled = 0;        // written to the spool (overflow or failed batch)
  std::uint64_t failed_batches = 0; // batches that could not be delivered (each a backoff)
  std::uint64_t lost = 0;           // could not even be spooled (disk error); logged
};

class ElasticSink final : public EventSink {
 public:
  explicit ElasticSink(ElasticSinkOptions options);
  ~ElasticSink() override;

  void submit(std::string stream, std::string id, nlohmann::json document) override;
  bool flush(Clock::time_point deadline) override;
  void close() override;

  ElasticSinkStats stats() const;
  const Spool& spool() const { return spool_; }

 private:
  struct Pending {
    SpoolRecord record;
    std::size_t bytes;
    Clock::time_point at;
    std::uint64_t journal_file = 0;  // its write-ahead copy's file; 0: none
  };
  // Records taken from the queue, with the journal files to settle once they are.
  struct Taken {
    std::vector<SpoolRecord> records;
    std::vector<std::uint64_t> journal_files;
  };

  void run();
  bool ready_locked(Clock::time_point now) const;
  Clock::time_point wake_at_locked(Clock::time_point now) const;
  bool step();
  bool replay_spool();
  bool ship_queue();
  bool ship(std::vector<SpoolRecord>& records, std::vector<SpoolRecord>* failed);
  void spill_queue();
  void settle(const std::vector<std::uint64_t>& journal_files);
  void keep_disk();  // the worker's disk chores: journal rotation, spool rolling
  void take_journal_leftovers();
  void to_spool(const std::vector<SpoolRecord>& records);
  std::chrono::milliseconds next_backoff();

  ElasticSinkOptions options_;
  Spool spool_;
  Journal journal_;
  DeadLetterFile dead_letter_;
  ElasticClient client_;  // the worker's only

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;  // worker waits for documents, flushes, close
  std::condition_variable idle_cv_;  // flush() waits for the worker to go idle
  std::deque<Pending> queue_;
  std::size_t queued_bytes_ = 0;
  int flush_waiters_ = 0;
  bool busy_ = false;                // the worker is shipping outside the lock
  bool closing_ = false;
  bool closed_ = false;
  Clock::time_point retry_at_{};     // backing off until then
  int attempt_ = 0;                  // consecutive failures (worker only)
  bool prepared_ = false;            // options_.prepare succeeded (worker only)
  Clock::time_point rotated_at_{};   // the journal's last rotation (worker only)
  std::mt19937_64 rng_{std::random_device{}()};  // worker only

  std::atomic<std::uint64_t> stored_{0}, dead_lettered_{0}, spooled_{0}, failed_batches_{0}, lost_{0};
  std::thread worker_;  // last: started once everything above exists
};

}  // namespace llmq::telemetry
