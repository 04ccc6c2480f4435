// Where request documents go once a request has ended: Elasticsearch (ElasticSink) or only the
// local spool (SpoolSink, the default without an Elasticsearch URL).
//
// Delivery contract: every submitted document is either acknowledged by the destination, kept
// in the on-disk spool until it can be, or written to the dead-letter file with the reason it
// was refused. A document carries its own id (the request id): destinations write it with
// "create" semantics, so shipping it twice never makes two copies.
//
// Threading: submit() may be called from any thread and never waits on the network; flush()
// and close() are called by the owner (at shutdown, or by tests). close() is idempotent; after
// it, submit() still keeps documents (in the spool) rather than dropping them.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace llmq::telemetry {

class EventSink {
 public:
  using Clock = std::chrono::steady_clock;

  virtual ~EventSink() = default;

  // Queues one document for the data stream (or index) `stream`, e.g.
  // "logs-llmq.requests-default", with `_id` = `id`. Never blocks on the destination: past the
  // in-memory cap the document goes straight to the spool.
  virtual void submit(std::string stream, std::string id, nlohmann::json document) = 0;

  // Waits until every document submitted before the call has been acknowledged (or
  // dead-lettered), or until `deadline`. True when all were; false leaves the rest queued or
  // spooled, nothing is lost.
  virtual bool flush(Clock::time_point deadline) = 0;

  // Stops background work; what is still queued in memory is written to the spool and synced.
  virtual void close() = 0;
};

}  // namespace llmq::telemetry
