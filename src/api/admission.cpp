#include "api/admission.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

namespace llmq {
namespace {

constexpr std::size_t kMinSamples = 3;           // finished jobs before predictions are made
constexpr std::int64_t kMaxRetryAfterS = 300;

std::int64_t ceil_seconds(double seconds) {
  if (!(seconds > 0)) return 1;
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(seconds)), 1, kMaxRetryAfterS);
}

double burst_of(const ClientLimits& l) { return l.burst > 0 ? l.burst : std::max(1.0, l.rate); }

}  // namespace

Admission::Admission(AdmissionOptions options) : options_(std::move(options)) {}

Admission::Ticket::Ticket(Ticket&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      client_(std::move(other.client_)),
      jobs_(other.jobs_) {}

Admission::Ticket& Admission::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->release(client_, jobs_);
    owner_ = std::exchange(other.owner_, nullptr);
    client_ = std::move(other.client_);
    jobs_ = other.jobs_;
  }
  return *this;
}

Admission::Ticket::~Ticket() {
  if (owner_ != nullptr) owner_->release(client_, jobs_);
}

std::variant<Admission::Ticket, Refusal> Admission::admit_client(
    const std::string& client, const std::optional<ClientLimits>& own_limits) {
  const ClientLimits limits = own_limits.value_or(options_.client);
  const bool limited = limits.max_concurrent > 0 || limits.rate > 0;
  if (!limited) return Ticket{};  // nothing to count for this client
  const Clock::time_point now = Clock::now();
  std::lock_guard lock(mutex_);
  forget_idle_locked(now);
  if (clients_.size() >= options_.max_clients && !clients_.contains(client))
    forget_least_recent_locked();
  auto [it, fresh] = clients_.try_emplace(client);
  ClientState& state = it->second;
  if (fresh) {
    state.tokens = burst_of(limits);
    state.refilled = now;
  }
  state.seen = now;
  state.limits = limits;
  if (limits.max_concurrent > 0 && state.in_flight >= limits.max_concurrent) {
    const auto service = mean_service_ms_locked();
    return Refusal{429, "rate_limited",
                   "this client already has " + std::to_string(state.in_flight) +
                       " requests in flight (limit " + std::to_string(limits.max_concurrent) + ")",
                   ceil_seconds(service ? *service / 1000 : 1)};
  }
  if (limits.rate > 0) {
    const double elapsed = std::chrono::duration<double>(now - state.refilled).count();
    state.tokens = std::min(burst_of(limits), state.tokens + elapsed * limits.rate);
    state.refilled = now;
    if (state.tokens < 1) {
      return Refusal{429, "rate_limited",
                     "this client is over its rate of " + std::to_string(limits.rate) +
                         " requests/s",
                     ceil_seconds((1 - state.tokens) / limits.rate)};
    }
    state.tokens -= 1;
  }
  ++state.in_flight;
  return Ticket{this, client};
}

void Admission::release(const std::string& client, std::int32_t jobs) {
  std::lock_guard lock(mutex_);
  if (auto it = clients_.find(client); it != clients_.end())
    it->second.in_flight = std::max(0, it->second.in_flight - jobs);
}

std::optional<Refusal> Admission::add_jobs(Ticket& ticket, std::int32_t extra) {
  if (ticket.owner_ != this || extra <= 0) return std::nullopt;  // a client without limits
  std::lock_guard lock(mutex_);
  const auto it = clients_.find(ticket.client_);
  if (it == clients_.end()) return std::nullopt;
  ClientState& state = it->second;
  const std::int32_t limit = state.limits.max_concurrent;
  if (limit > 0 && state.in_flight + extra > limit) {
    const auto service = mean_service_ms_locked();
    return Refusal{429, "rate_limited",
                   "this request's " + std::to_string(extra + 1) + " choices count as as many jobs; " +
                       "with the " + std::to_string(state.in_flight) +
                       " this client has in flight, that passes its limit of " + std::to_string(limit),
                   ceil_seconds(service ? *service / 1000 : 1)};
  }
  state.in_flight += extra;
  ticket.jobs_ += extra;
  return std::nullopt;
}

void Admission::forget_idle_locked(Clock::time_point now) {
  if (now - last_sweep_ < options_.sweep_every) return;
  last_sweep_ = now;
  std::erase_if(clients_, [&](const auto& entry) {
    const ClientState& s = entry.second;
    if (s.in_flight > 0) return false;
    if (s.limits.rate <= 0) return true;
    const double elapsed = std::chrono::duration<double>(now - s.refilled).count();
    return s.tokens + elapsed * s.limits.rate >= burst_of(s.limits);  // as if never seen
  });
}

void Admission::forget_least_recent_locked() {
  std::vector<std::pair<Clock::time_point, std::string_view>> idle;
  for (const auto& [name, s] : clients_)
    if (s.in_flight == 0) idle.emplace_back(s.seen, name);
  const std::size_t drop = std::min(idle.size(), std::max<std::size_t>(1, options_.max_clients / 10));
  std::nth_element(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(drop), idle.end());
  std::vector<std::string> names;
  for (std::size_t i = 0; i < drop; ++i) names.emplace_back(idle[i].second);
  for (const std::string& name : names) clients_.erase(name);
}

std::optional<double> Admission::mean_service_ms_locked() const {
  if (service_ms_.size() < kMinSamples) return std::nullopt;
  return std::accumulate(service_ms_.begin(), service_ms_.end(), 0.0) /
         static_cast<double>(service_ms_.size());
}

std::optional<std::chrono::milliseconds> Admission::predicted_wait(std::int64_t jobs_ahead) const {
  std::lock_guard lock(mutex_);
  const auto service = mean_service_ms_locked();
  if (!service) return std::nullopt;
  const double wait = static_cast<double>(jobs_ahead) * *service / std::max(1, options_.slots);
  return std::chrono::milliseconds(static_cast<std::int64_t>(wait));
}

std::optional<Refusal> Admission::check_wait(
    std::int64_t jobs_ahead, std::optional<std::chrono::milliseconds> deadline_in) const {
  if (!deadline_in || jobs_ahead <= 0) return std::nullopt;
  const auto wait = predicted_wait(jobs_ahead);
  if (!wait || *wait <= *deadline_in) return std::nullopt;
  return Refusal{429, "deadline",
                 "the predicted queue wait (" + std::to_string(wait->count()) +
                     " ms) exceeds the request's deadline (" +
                     std::to_string(deadline_in->count()) + " ms)",
                 ceil_seconds(static_cast<double>((*wait - *deadline_in).count()) / 1000)};
}

std::int64_t Admission::queue_full_retry_after(std::int64_t depth, std::int64_t capacity) const {
  std::lock_guard lock(mutex_);
  const auto service = mean_service_ms_locked();
  if (!service) return 1;
  const double drain_per_s = std::max(1, options_.slots) * 1000.0 / std::max(1.0, *service);
  const double excess = static_cast<double>(std::max<std::int64_t>(1, depth - capacity + 1));
  return ceil_seconds(excess / drain_per_s);
}

void Admission::job_done(std::chrono::milliseconds service) {
  std::lock_guard lock(mutex_);
  service_ms_.push_back(static_cast<double>(std::max<std::int64_t>(0, service.count())));
  while (service_ms_.size() > std::max<std::size_t>(1, options_.service_samples))
    service_ms_.pop_front();
}

std::size_t Admission::tracked_clients() const {
  std::lock_guard lock(mutex_);
  return clients_.size();
}

}  // namespace llmq
