// The on-disk spool: documents that could not be shipped yet, kept in order across restarts.
//
// Layout: a directory of append-only segment files `spool-<seq>.ndjson` (seq zero-padded, so
// name order is age order), one record per line: {"stream":…,"id":…,"doc":{…}}. New records go
// to the open (newest) segment; it is sealed when it reaches `segment_bytes`, by seal(), and on
// reopen (a restarted process never appends to a file a crash may have torn). Readers only read
// sealed segments, oldest first, and remove one once every record in it was shipped.
//
// Durability (fsync policy): a segment is fsynced when it is sealed and on sync(); the directory
// is fsynced when a segment is created or removed. Between syncs a crash of the process loses
// nothing (the data is in the kernel); a crash of the machine loses at most the lines written
// since the last sync. A torn last line is skipped when read and counted in skipped_lines().
//
// Cap: past `max_bytes` on disk the oldest sealed segments are deleted whole; the records they
// held are counted in dropped_documents() (for a metric). A segment being replayed may be among
// them; it is then counted as dropped even if the replay also shipped it.
//
// Threading: every public member takes one internal mutex, so callers on any thread may append
// while the owning shipper reads and removes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace llmq::telemetry {

struct SpoolRecord {
  std::string stream;
  std::string id;
  nlohmann::json doc;
};

struct SpoolOptions {
  std::filesystem::path dir;
  std::uint64_t segment_bytes = 8ull << 20;  // roll to a new segment past this size
  std::uint64_t max_bytes = 512ull << 20;    // drop oldest segments past this total
  // Whether append() itself rolls a full segment (an fsync, a new file and a directory fsync).
  // False: append() only writes, and whoever owns the spool calls maintain() on a thread of
  // its own, so that a request's thread never waits on the disk (the sinks do this).
  bool roll_in_append = true;
};

class Spool {
 public:
  // Opens (creating if needed) the directory and takes over the segments already there.
  explicit Spool(SpoolOptions options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  void append(const SpoolRecord& record);
  void append(const std::vector<SpoolRecord>& records);
  void seal();  // closes the open segment (if it holds anything) so readers can take it
  void sync();  // fsyncs the open segment
  // The disk work append() leaves to its owner when roll_in_append is false: rolls a segment
  // past segment_bytes and opens the next one ahead of need. The fsyncs run outside the lock,
  // so appends on other threads do not wait for them.
  void maintain();

  // Oldest sealed segment, if any; the records of a segment in file order.
  std::optional<std::uint64_t> oldest_sealed() const;
  std::vector<SpoolRecord> read(std::uint64_t seq) const;
  void remove(std::uint64_t seq);  // no-op if it is already gone (dropped by the cap)

  const std::filesystem::path& dir() const { return options_.dir; }
  bool empty() const;                        // no record anywhere, open segment included
  std::uint64_t documents() const;           // records held now
  std::uint64_t bytes() const;               // bytes on disk now
  std::uint64_t dropped_documents() const;   // records deleted by the cap, since open
  std::uint64_t skipped_lines() const;       // torn or unreadable lines found at open
  std::size_t segment_count() const;         // files, open segment included

 private:
  void lock_directory();
  struct Segment {
    std::uint64_t bytes = 0;
    std::uint64_t records = 0;
  };

  std::filesystem::path path_of(std::uint64_t seq) const;
  void scan_existing();
  void open_segment_locked();
  void seal_locked();
  void append_locked(const SpoolRecord& record);
  void enforce_cap_locked();
  std::uint64_t total_bytes_locked() const;

  SpoolOptions options_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, Segment> segments_;  // every segment, the open one included
  std::optional<std::uint64_t> open_seq_;      // the segment being appended to, if any
  std::uint64_t next_seq_ = 1;
  int open_fd_ = -1;
  int lock_fd_ = -1;  // holds flock(LOCK_EX) on <dir>/.lock while this Spool lives
  std::uint64_t dropped_ = 0;
  std::uint64_t skipped_ = 0;  // counted when existing segments are scanned at open
};

}  // namespace llmq::telemetry
