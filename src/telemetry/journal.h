// Journal: the write-ahead copy of the documents ElasticSink holds in memory. Every document the
// sink queues is first appended here (one write(2) into the page cache, no fsync), so a process
// that is killed (SIGKILL, the OOM killer, a crash) with documents still queued leaves them on
// disk; the next start moves what it finds into the spool, whose replay ships them (`create` with
// the request id as `_id`: one already shipped comes back 409 and is not stored twice).
//
// Files `journal-<seq>.ndjson` in a directory of their own (inside the spool's, under its lock).
// The shipper rotates the open file now and then; a rotated file is deleted once every document
// in it was settled (stored, dead-lettered, or moved into the spool). What this does not cover:
// a crash of the machine loses what the kernel had not written yet (the spool's fsync policy
// covers what was spooled).
//
// Threading: one mutex; append() and settled() from any thread, rotate() from the shipper.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

#include "telemetry/spool.h"

namespace llmq::telemetry {

class Journal {
 public:
  // Opens (creating if needed) `dir`. Files found there belong to a process that ended without
  // settling them: leftovers() has their records.
  explicit Journal(std::filesystem::path dir);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // The records of files an earlier process left; call once, at start, and call
  // drop_leftovers() once they are safe elsewhere (in the spool).
  std::vector<SpoolRecord> leftovers() const;
  void drop_leftovers();

  // Writes the record; returns the file it went to, for settled(). Throws on a write error.
  std::uint64_t append(const SpoolRecord& record) { return append_line(line_of(record)); }
  // The same with the record already serialised by line_of().
  std::uint64_t append_line(const std::string& line);
  // A record as one journal line, newline included.
  static std::string line_of(const SpoolRecord& record);
  // `count` records of `file` are settled.
  void settled(std::uint64_t file, std::size_t count = 1);
  // Starts a new file when the open one holds anything, and deletes rotated files whose records
  // are all settled.
  void rotate();

  std::size_t files() const;  // on disk, the open one and leftovers included

 private:
  struct File {
    std::uint64_t outstanding = 0;  // appended, not settled yet
    bool open = false;
  };
  std::filesystem::path path_of(std::uint64_t seq) const;
  void open_file_locked();
  void delete_settled_locked();

  const std::filesystem::path dir_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, File> files_;      // this process's files
  std::vector<std::uint64_t> leftovers_;     // an earlier process's
  std::uint64_t next_seq_ = 1;
  std::uint64_t open_seq_ = 0;
  int open_fd_ = -1;
};

}  // namespace llmq::telemetry
