#include "telemetry/spool_sink.h"

#include <spdlog/spdlog.h>

namespace llmq::telemetry {

SpoolSink::SpoolSink(SpoolOptions options) : spool_(std::move(options)) {}

SpoolSink::~SpoolSink() { close(); }

void SpoolSink::submit(std::string stream, std::string id, nlohmann::json document) {
  const SpoolRecord record{std::move(stream), std::move(id), std::move(document)};
  try {
    spool_.append(record);
  } catch (const std::exception& e) {
    // A request must not fail because its record could not be kept; the log names it.
    spdlog::error("spool: document {} lost: {}", record.id, e.what());
  }
}

bool SpoolSink::flush(Clock::time_point /*deadline*/) {
  spool_.sync();
  return true;
}

void SpoolSink::close() { spool_.sync(); }

}  // namespace llmq::telemetry
