#include "telemetry/spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <system_error>

#include "util/write_all.h"

namespace llmq::telemetry {
namespace {

constexpr const char* kPrefix = "spool-";
constexpr const char* kSuffix = ".ndjson";

std::optional<std::uint64_t> parse_seq(const std::string& name) {
  const std::string prefix = kPrefix;
  const std::string suffix = kSuffix;
  if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoull(digits);
}

// A line is a record only if it parses and has the three fields; anything else is torn.
std::optional<SpoolRecord> parse_line(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("stream") || !j.contains("id") || !j.contains("doc") ||
      !j["stream"].is_string() || !j["id"].is_string()) {
    return std::nullopt;
  }
  return SpoolRecord{j["stream"].get<std::string>(), j["id"].get<std::string>(), std::move(j["doc"])};
}

void fsync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

Spool::Spool(SpoolOptions options) : options_(std::move(options)) {
  options_.segment_bytes = std::max<std::uint64_t>(1, std::min(options_.segment_bytes, options_.max_bytes));
  std::filesystem::create_directories(options_.dir);
  lock_directory();
  scan_existing();
}

Spool::~Spool() {
  {
    std::lock_guard lock(mutex_);
    seal_locked();
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

// Two processes on one spool would replay and delete each other's segments: the second is
// refused. flock is released by the kernel when the process dies, so a crash leaves no stale lock.
void Spool::lock_directory() {
  const std::filesystem::path path = options_.dir / ".lock";
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw std::system_error(errno, std::generic_category(), "spool lock " + path.string());
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (error == EWOULDBLOCK)
      throw std::runtime_error("spool directory " + options_.dir.string() +
                               " is in use by another llmq process");
    throw std::system_error(error, std::generic_category(), "spool lock " + path.string());
  }
}

std::filesystem::path Spool::path_of(std::uint64_t seq) const {
  char name[64];
  std::snprintf(name, sizeof name, "%s%020llu%s", kPrefix, static_cast<unsigned long long>(seq), kSuffix);
  return options_.dir / name;
}

// Every existing segment is sealed: a crash may have torn its last line, so nothing is appended
// to it. Its records are counted now so the cap and documents() are right from the start.
void Spool::scan_existing() {
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir)) {
    const auto seq = parse_seq(entry.path().filename().string());
    if (!seq || !entry.is_regular_file()) continue;
    Segment segment;
    segment.bytes = entry.file_size();
    std::ifstream in(entry.path(), std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      if (parse_line(line)) {
        ++segment.records;
      } else {
        ++skipped_;
      }
    }
    segments_[*seq] = segment;
    next_seq_ = std::max(next_seq_, *seq + 1);
  }
}

void Spool::open_segment_locked() {
  const std::uint64_t seq = next_seq_++;
  open_fd_ = ::open(path_of(seq).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (open_fd_ < 0) throw std::system_error(errno, std::generic_category(), "spool open " + path_of(seq).string());
  fsync_dir(options_.dir);
  open_seq_ = seq;
  segments_[seq] = Segment{};
}

void Spool::seal_locked() {
  if (!open_seq_) return;
  ::fsync(open_fd_);
  ::close(open_fd_);
  open_fd_ = -1;
  open_seq_.reset();
}

void Spool::maintain() {
  int sealed_fd = -1;
  {
    std::lock_guard lock(mutex_);
    if (open_seq_ && segments_[*open_seq_].bytes >= options_.segment_bytes) {
      sealed_fd = open_fd_;  // synced and closed below, outside the lock
      open_fd_ = -1;
      open_seq_.reset();
    }
  }
  if (sealed_fd >= 0) {
    ::fsync(sealed_fd);
    ::close(sealed_fd);
  }
  // The next segment, ahead of the append that needs it (its creation syncs the directory).
  std::lock_guard lock(mutex_);
  if (!open_seq_) {
    try {
      open_segment_locked();
    } catch (const std::exception&) {
      // The next append opens it, and reports the error to its caller.
    }
  }
}

void Spool::append_locked(const SpoolRecord& record) {
  if (!open_seq_) open_segment_locked();
  nlohmann::json line = {{"stream", record.stream}, {"id", record.id}, {"doc", record.doc}};
  // Invalid UTF-8 in a document is replaced rather than thrown on: the document still ships.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  try {
    write_all(open_fd_, text, "spool write");
  } catch (...) {
    // A partial line (disk full) must not be glued to the next record: later appends go to a
    // new segment, and this one ends in a torn line that readers skip.
    seal_locked();
    throw;
  }
  Segment& segment = segments_[*open_seq_];
  segment.bytes += text.size();
  ++segment.records;
  if (options_.roll_in_append && segment.bytes >= options_.segment_bytes) seal_locked();
}

void Spool::enforce_cap_locked() {
  while (total_bytes_locked() > options_.max_bytes && !segments_.empty()) {
    const auto oldest = segments_.begin();
    if (open_seq_ && oldest->first == *open_seq_) break;  // never drop what is being written
    dropped_ += oldest->second.records;
    std::filesystem::remove(path_of(oldest->first));
    segments_.erase(oldest);
  }
}

std::uint64_t Spool::total_bytes_locked() const {
  std::uint64_t total = 0;
  for (const auto& [seq, segment] : segments_) total += segment.bytes;
  return total;
}

void Spool::append(const SpoolRecord& record) {
  std::lock_guard lock(mutex_);
  append_locked(record);
  enforce_cap_locked();
}

void Spool::append(const std::vector<SpoolRecord>& records) {
  std::lock_guard lock(mutex_);
  for (const auto& record : records) append_locked(record);
  enforce_cap_locked();
}

void Spool::seal() {
  std::lock_guard lock(mutex_);
  if (open_seq_ && segments_[*open_seq_].records == 0) return;  // keep an empty open segment open
  seal_locked();
}

void Spool::sync() {
  std::lock_guard lock(mutex_);
  if (open_fd_ >= 0) ::fsync(open_fd_);
}

std::optional<std::uint64_t> Spool::oldest_sealed() const {
  std::lock_guard lock(mutex_);
  for (const auto& [seq, segment] : segments_) {
    if (!open_seq_ || seq != *open_seq_) return seq;
  }
  return std::nullopt;
}

std::vector<SpoolRecord> Spool::read(std::uint64_t seq) const {
  std::lock_guard lock(mutex_);
  std::vector<SpoolRecord> records;
  if (!segments_.contains(seq)) return records;
  std::ifstream in(path_of(seq), std::ios::binary);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (auto record = parse_line(line)) records.push_back(std::move(*record));
  }
  return records;
}

void Spool::remove(std::uint64_t seq) {
  std::lock_guard lock(mutex_);
  if (open_seq_ && seq == *open_seq_) return;
  if (segments_.erase(seq) == 0) return;
  std::filesystem::remove(path_of(seq));
  fsync_dir(options_.dir);
}

bool Spool::empty() const { return documents() == 0; }

std::uint64_t Spool::documents() const {
  std::lock_guard lock(mutex_);
  std::uint64_t total = 0;
  for (const auto& [seq, segment] : segments_) total += segment.records;
  return total;
}

std::uint64_t Spool::bytes() const {
  std::lock_guard lock(mutex_);
  return total_bytes_locked();
}

std::uint64_t Spool::dropped_documents() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

std::uint64_t Spool::skipped_lines() const {
  std::lock_guard lock(mutex_);
  return skipped_;
}

std::size_t Spool::segment_count() const {
  std::lock_guard lock(mutex_);
  return segments_.size();
}

}  // namespace llmq::telemetry
