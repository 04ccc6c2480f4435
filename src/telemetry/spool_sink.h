// The EventSink used when no Elasticsearch is configured: documents go only to the on-disk
// spool, in the same format ElasticSink spools in, so a later run with an Elasticsearch URL and
// the same spool directory ships them.
//
// Threading: submit() may be called from any thread (the spool has its own mutex); it is one
// write(2) into the page cache, so a killed process loses nothing it was given. The disk's slow
// work (an fsync and a new file when a segment is full) runs on the sink's own thread, so a
// request's thread never waits for it. flush() and close() are for the owner.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

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
  void keep_disk();  // the thread: rolls full segments

  Spool spool_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool closing_ = false;
  std::thread keeper_;  // last: started once the spool exists
};

}  // namespace llmq::telemetry
