// AuthThrottle: a client that keeps presenting wrong API keys is told to stop (429) instead of
// being given an unlimited number of guesses. After `max_failures` 401s within `window`, the
// client (its address group: api/client_identity.h) is refused without its key being looked at
// until that window ends.
//
// Thread-safe (one mutex). Memory is bounded by `max_clients`: past it, the entries whose window
// ended go, then the oldest.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace llmq {

struct AuthThrottleOptions {
  std::int32_t max_failures = 10;
  std::chrono::seconds window{60};
  std::size_t max_clients = 100000;
};

class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit AuthThrottle(AuthThrottleOptions options = {}) : options_(options) {}

  // Seconds until `client` may try again; nullopt when it may now.
  std::optional<std::int64_t> blocked(const std::string& client, Clock::time_point now = Clock::now());
  // `client` presented a missing or wrong key.
  void failed(const std::string& client, Clock::time_point now = Clock::now());
  std::size_t tracked_clients() const;

 private:
  struct Failures {
    Clock::time_point since;  // start of the current window
    std::int32_t count = 0;
  };
  void shrink_locked(Clock::time_point now);

  const AuthThrottleOptions options_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Failures> clients_;
};

}  // namespace llmq
