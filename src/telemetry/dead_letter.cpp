#include "telemetry/dead_letter.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace llmq::telemetry {

DeadLetterFile::DeadLetterFile(std::filesystem::path path, std::uint64_t max_bytes)
    : path_(std::move(path)), max_bytes_(max_bytes) {
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path());
}

void DeadLetterFile::write(const SpoolRecord& record, int status, const std::string& reason) {
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  const nlohmann::json line = {{"time_ms", now_ms}, {"stream", record.stream}, {"id", record.id},
                               {"status", status},  {"reason", reason},        {"doc", record.doc}};
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mutex_);
  std::error_code size_error;
  const std::uintmax_t size = std::filesystem::file_size(path_, size_error);
  if (!size_error && size > 0 && size + text.size() > max_bytes_) {
    std::filesystem::path aside = path_;
    aside += ".1";
    std::error_code rename_error;
    std::filesystem::rename(path_, aside, rename_error);
    ++rotated_;
    spdlog::warn("dead-letter file {} reached {} bytes: moved to {} (an older one there is gone)",
                 path_.string(), max_bytes_, aside.string());
  }
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

std::uint64_t DeadLetterFile::rotated() const {
  std::lock_guard lock(mutex_);
  return rotated_;
}

std::uint64_t DeadLetterFile::written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

}  // namespace llmq::telemetry
