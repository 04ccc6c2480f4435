#include "telemetry/journal.h"

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

constexpr std::string_view kPrefix = "journal-";
constexpr std::string_view kSuffix = ".ndjson";

std::optional<std::uint64_t> parse_seq(const std::string& name) {
  if (name.size() <= kPrefix.size() + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix))
    return std::nullopt;
  const std::string digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  for (char c : digits)
    if (c < '0' || c > '9') return std::nullopt;
  return std::stoull(digits);
}

}  // namespace

Journal::Journal(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    const auto seq = parse_seq(entry.path().filename().string());
    if (!seq || !entry.is_regular_file()) continue;
    leftovers_.push_back(*seq);
    next_seq_ = std::max(next_seq_, *seq + 1);
  }
  std::sort(leftovers_.begin(), leftovers_.end());
}

Journal::~Journal() {
  std::lock_guard lock(mutex_);
  if (open_fd_ >= 0) ::close(open_fd_);
  open_fd_ = -1;
  for (auto& [seq, file] : files_) file.open = false;
  delete_settled_locked();
}

std::filesystem::path Journal::path_of(std::uint64_t seq) const {
  char name[64];
  std::snprintf(name, sizeof name, "journal-%020llu.ndjson", static_cast<unsigned long long>(seq));
  return dir_ / name;
}

std::vector<SpoolRecord> Journal::leftovers() const {
  std::lock_guard lock(mutex_);
  std::vector<SpoolRecord> records;
  for (std::uint64_t seq : leftovers_) {
    std::ifstream in(path_of(seq), std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object() || !j.contains("doc") || !j["stream"].is_string() || !j["id"].is_string())
        continue;  // a torn last line: the process died mid-write
      records.push_back({j["stream"].get<std::string>(), j["id"].get<std::string>(), std::move(j["doc"])});
    }
  }
  return records;
}

void Journal::drop_leftovers() {
  std::lock_guard lock(mutex_);
  for (std::uint64_t seq : leftovers_) std::filesystem::remove(path_of(seq));
  leftovers_.clear();
}

void Journal::open_file_locked() {
  const std::uint64_t seq = next_seq_++;
  open_fd_ = ::open(path_of(seq).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (open_fd_ < 0) throw std::system_error(errno, std::generic_category(), "journal open " + path_of(seq).string());
  open_seq_ = seq;
  files_[seq].open = true;
}

std::string Journal::line_of(const SpoolRecord& record) {
  const nlohmann::json line = {{"stream", record.stream}, {"id", record.id}, {"doc", record.doc}};
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  return text;
}

std::uint64_t Journal::append_line(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (open_fd_ < 0) open_file_locked();
  write_all(open_fd_, line, "journal write");
  ++files_[open_seq_].outstanding;
  return open_seq_;
}

void Journal::settled(std::uint64_t file, std::size_t count) {
  std::lock_guard lock(mutex_);
  const auto it = files_.find(file);
  if (it == files_.end()) return;
  it->second.outstanding -= std::min<std::uint64_t>(count, it->second.outstanding);
}

void Journal::rotate() {
  std::lock_guard lock(mutex_);
  if (open_fd_ >= 0) {  // a file is opened by an append only: it holds something
    ::close(open_fd_);
    open_fd_ = -1;
    files_[open_seq_].open = false;
  }
  delete_settled_locked();
}

void Journal::delete_settled_locked() {
  for (auto it = files_.begin(); it != files_.end();) {
    if (!it->second.open && it->second.outstanding == 0) {
      std::filesystem::remove(path_of(it->first));
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t Journal::files() const {
  std::lock_guard lock(mutex_);
  return files_.size() + leftovers_.size();
}

}  // namespace llmq::telemetry
