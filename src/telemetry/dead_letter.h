// The dead-letter file: documents Elasticsearch refused for a reason a retry cannot fix
// (a mapping conflict, a malformed document), one NDJSON line each with the reason, so an
// operator can fix and re-send them. Append-only; each line is fsynced, as the file is rare.
// Bounded: past `max_bytes` the file is renamed `<name>.1` (replacing an older one) and a new
// one begins, so at most twice `max_bytes` are kept; rotated() counts how often.
//
// Threading: write() takes an internal mutex; any thread may call it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>

#include "telemetry/spool.h"

namespace llmq::telemetry {

class DeadLetterFile {
 public:
  explicit DeadLetterFile(std::filesystem::path path, std::uint64_t max_bytes = 64ull << 20);

  // Appends {"time":…,"stream":…,"id":…,"status":…,"reason":…,"doc":{…}}.
  void write(const SpoolRecord& record, int status, const std::string& reason);
  std::uint64_t written() const;  // lines written by this process
  std::uint64_t rotated() const;  // times the file reached max_bytes and was set aside

 private:
  std::filesystem::path path_;
  const std::uint64_t max_bytes_;
  mutable std::mutex mutex_;
  std::uint64_t written_ = 0;
  std::uint64_t rotated_ = 0;
};

}  // namespace llmq::telemetry
