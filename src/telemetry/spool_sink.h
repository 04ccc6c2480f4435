// The EventSink used when no Elasticsearch is configured: documents go only to the on-disk
// spool, in the same format ElasticSink spools in, so a later run with an Elasticsearch URL and
// the same spool directory ships them.
//
// Threading: submit() may be called from any thread (the spool has its own mutex); the append
// is a buffered write, never a network wait. flush() and close() are for the owner.
#pragma once

#include "telemetry/event_sink.h"
#include "telemetry/spool.h"

namespace llmq::telemetry {

class SpoolSink final : public EventSink {
 public:
  explicit SpoolSink(SpoolOptions options);
  ~SpoolSink() override;

  void submit(std::string stream, std::string id, nlohmann::json document) override;
  bool flush(Clock::time_point deadline) override;  // fsyncs; true once on disk
  void close() override;

  const Spool& spool() const { return spool_; }

 private:
  Spool spool_;
};

}  // namespace llmq::telemetry
