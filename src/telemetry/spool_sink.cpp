#include "telemetry/spool_sink.h"

#include <spdlog/spdlog.h>

#include "telemetry/journal.h"
#include "util/thread_priority.h"

namespace llmq::telemetry {
namespace {

SpoolOptions rolled_by_owner(SpoolOptions options) {
  options.roll_in_append = false;
  return options;
}

}  // namespace

SpoolSink::SpoolSink(SpoolOptions options)
    : spool_(rolled_by_owner(std::move(options))), keeper_([this] { keep_disk(); }) {
  // An earlier run with Elasticsearch that did not end cleanly left its journal: into the spool
  // with it, for the next run with a URL (or `llmq elastic replay`) to ship.
  Journal journal(spool_.dir() / "journal");
  std::vector<SpoolRecord> left = journal.leftovers();
  if (left.empty()) return;
  spool_.append(left);
  spool_.sync();
  journal.drop_leftovers();
}

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

void SpoolSink::keep_disk() {
  name_this_thread("llmq-spool");
  std::unique_lock lock(mutex_);
  while (!closing_) {
    lock.unlock();
    spool_.maintain();
    lock.lock();
    wake_.wait_for(lock, std::chrono::milliseconds(200), [this] { return closing_; });
  }
}

bool SpoolSink::flush(Clock::time_point /*deadline*/) {
  spool_.sync();
  return true;
}

void SpoolSink::close() {
  {
    std::lock_guard lock(mutex_);
    if (closing_) return;
    closing_ = true;
  }
  wake_.notify_all();
  if (keeper_.joinable()) keeper_.join();
  spool_.sync();
}

}  // namespace llmq::telemetry
