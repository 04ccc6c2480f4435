// Admission: the one component every request passes on its way into LLM_INFERENCE. It says no
// early and cheaply, with a reason and a Retry-After, instead of letting latency explode:
//
//   - per client (an API key's name, else the client address): at most `max_concurrent`
//     requests queued or running, and a token bucket of `rate` requests/s with `burst`
//     → 429 rate_limited;
//   - predicted wait: jobs ahead × recent service time / slots, against the request's deadline
//     → 429 deadline, at once, rather than a deadline_exceeded later;
//   - Retry-After for a full queue from the measured drain rate (slots / service time).
//
// The queue itself enforces --queue-max (429 queue_full); Admission only prices the refusal.
// Service times come from finished jobs (job_done). Until a few jobs have finished there is no
// estimate, and predicted-wait refusals are off.
//
// Thread-safe: HTTP threads call it concurrently; one mutex guards its small state. Memory is
// bounded: idle clients (nothing in flight, bucket full) are forgotten, and past `max_clients`
// the idle ones seen longest ago go first, a tenth at a time, whatever their buckets hold.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

namespace llmq {

struct ClientLimits {
  std::int32_t max_concurrent = 0;  // requests queued or running at once; 0: no limit
  double rate = 0;                  // requests per second, sustained; 0: no limit
  double burst = 0;                 // bucket size; 0: max(1, rate)
};

struct AdmissionOptions {
  std::int32_t slots = 1;           // jobs decoded at once (the drain rate's multiplier)
  ClientLimits client{};            // the default for clients without their own limits
  std::size_t service_samples = 32; // finished jobs the service-time estimate averages
  std::chrono::milliseconds sweep_every{10000};  // how often idle clients are forgotten
  std::size_t max_clients = 100000;  // clients remembered; past it the longest unseen idle
                                     // ones are forgotten (their buckets start full again)
};

struct Refusal {
  int status = 429;
  std::string code;          // rate_limited, deadline
  std::string message;
  std::int64_t retry_after_s = 1;
};

class Admission {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Admission(AdmissionOptions options);

  // Holds one of a client's concurrent requests; releases it when destroyed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Admission* owner, std::string client) : owner_(owner), client_(std::move(client)) {}
    Ticket(Ticket&& other) noexcept;
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket();

   private:
    friend class Admission;
    Admission* owner_ = nullptr;
    std::string client_;
    std::int32_t jobs_ = 1;  // jobs it holds of its client's max_concurrent
  };

  // The client's limits (its own, or the default): a ticket to go on, or why not.
  std::variant<Ticket, Refusal> admit_client(const std::string& client,
                                             const std::optional<ClientLimits>& own_limits);

  // A request with n choices is n jobs: the ticket's client holds `extra` more, within its
  // max_concurrent, or the refusal (429 rate_limited) when that would pass it.
  std::optional<Refusal> add_jobs(Ticket& ticket, std::int32_t extra);

  // A refusal when `jobs_ahead` waiting jobs would keep a new one past `deadline_in`.
  std::optional<Refusal> check_wait(std::int64_t jobs_ahead,
                                    std::optional<std::chrono::milliseconds> deadline_in) const;

  // Seconds until the queue (at `depth`, full at `capacity`) should have room again.
  std::int64_t queue_full_retry_after(std::int64_t depth, std::int64_t capacity) const;

  // A job finished after `service` (a worker took it → it ended).
  void job_done(std::chrono::milliseconds service);

  // The estimate of the wait for `jobs_ahead`; nullopt while there is none. For tests and logs.
  std::optional<std::chrono::milliseconds> predicted_wait(std::int64_t jobs_ahead) const;
  std::size_t tracked_clients() const;

 private:
  struct ClientState {
    std::int32_t in_flight = 0;
    double tokens = 0;
    Clock::time_point refilled{};
    Clock::time_point seen{};  // its last request, for the cap
    ClientLimits limits;
  };

  void release(const std::string& client, std::int32_t jobs);
  std::optional<double> mean_service_ms_locked() const;
  void forget_idle_locked(Clock::time_point now);
  void forget_least_recent_locked();

  const AdmissionOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, ClientState, std::less<>> clients_;
  std::deque<double> service_ms_;  // the last `service_samples` service times
  Clock::time_point last_sweep_{};
};

}  // namespace llmq
