#include "telemetry/dead_letter.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace llmq::telemetry {

DeadLetterFile::DeadLetterFile(std::filesystem::path path) : path_(std::move(path)) {
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path());
}

void DeadLetterFile::write(const SpoolRecord& record, int status, const std::string& reason) {
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  const nlohmann::json line = {{"time_ms", now_ms}, {"stream", record.stream}, {"id", record.id},
                               {"status", status},  {"reason", reason},        {"doc", record.doc}};
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mutex_);
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  // A dead-letter file we cannot write is logged, never fatal: the log then holds the id.
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    spdlog::error("dead-letter {} for document {} not written ({}): {}", path_.string(), record.id, reason,
                  std::strerror(errno));
  } else {
    ::fsync(fd);
  }
  if (fd >= 0) ::close(fd);
  ++written_;
}

std::uint64_t DeadLetterFile::written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

}  // namespace llmq::telemetry
