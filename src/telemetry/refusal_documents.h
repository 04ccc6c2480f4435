// RefusalDocuments: which refusals get a request document of their own. A flood of bad requests
// (400s, 401s, 415s, a scanner's 404s) must neither push real requests' documents out of the
// spool's cap nor keep the disk and the shipper busy, yet nothing may go unaccounted: metrics
// count every refusal, exactly, and each refusal reason's documents are a token bucket (by
// default 20 a second, bursts of 200). A refusal past it is left out; the next document of that
// reason says how many were (`llmq.refusals_omitted`), so the documents still add up.
//
// Requests that were admitted (a job ran, or waited) always get their document; this is for
// refusals only. Thread-safe (one mutex); bounded (one entry per reason, a small fixed set).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace llmq::telemetry {

struct RefusalDocumentOptions {
  double rate = 20;     // documents per second, per reason
  double burst = 200;   // documents at once, per reason
};

class RefusalDocuments {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RefusalDocuments(RefusalDocumentOptions options = {}) : options_(options) {}

  // nullopt: leave this refusal's document out. Otherwise the document is written, carrying the
  // number of this reason's refusals left out since its previous document.
  std::optional<std::uint64_t> admit(const std::string& reason, Clock::time_point now = Clock::now());
  // Refusals of every reason left out so far (for a metric).
  std::uint64_t omitted_total() const;

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point refilled{};
    std::uint64_t omitted = 0;  // since this reason's last document
  };
  const RefusalDocumentOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
  std::uint64_t omitted_total_ = 0;
};

}  // namespace llmq::telemetry
