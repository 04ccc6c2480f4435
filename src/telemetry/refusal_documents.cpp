#include "telemetry/refusal_documents.h"

#include <algorithm>
#include <utility>

namespace llmq::telemetry {

std::optional<std::uint64_t> RefusalDocuments::admit(const std::string& reason, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto [it, fresh] = buckets_.try_emplace(reason);
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = options_.burst;
    b.refilled = now;
  }
  const double elapsed = std::chrono::duration<double>(now - b.refilled).count();
  b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.rate);
  b.refilled = now;
  if (b.tokens < 1) {
    ++b.omitted;
    ++omitted_total_;
    return std::nullopt;
  }
  b.tokens -= 1;
  return std::exchange(b.omitted, 0);
}

std::uint64_t RefusalDocuments::omitted_total() const {
  std::lock_guard lock(mutex_);
  return omitted_total_;
}

}  // namespace llmq::telemetry
