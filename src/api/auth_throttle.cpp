#include "api/auth_throttle.h"

#include <algorithm>
#include <vector>

namespace llmq {

std::optional<std::int64_t> AuthThrottle::blocked(const std::string& client, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto it = clients_.find(client);
  if (it == clients_.end() || it->second.count < options_.max_failures) return std::nullopt;
  const Clock::time_point until = it->second.since + options_.window;
  if (now >= until) {
    clients_.erase(it);
    return std::nullopt;
  }
  return std::max<std::int64_t>(
      1, std::chrono::ceil<std::chrono::seconds>(until - now).count());
}

void AuthThrottle::failed(const std::string& client, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (clients_.size() >= options_.max_clients && !clients_.contains(client)) shrink_locked(now);
  Failures& f = clients_[client];
  if (f.count == 0 || now - f.since >= options_.window) f = Failures{now, 0};
  ++f.count;
}

std::size_t AuthThrottle::tracked_clients() const {
  std::lock_guard lock(mutex_);
  return clients_.size();
}

void AuthThrottle::shrink_locked(Clock::time_point now) {
  std::erase_if(clients_, [&](const auto& e) { return now - e.second.since >= options_.window; });
  if (clients_.size() < options_.max_clients) return;
  std::vector<std::pair<Clock::time_point, std::string>> by_age;
  for (const auto& [name, f] : clients_) by_age.emplace_back(f.since, name);
  const std::size_t drop = std::max<std::size_t>(1, options_.max_clients / 10);
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop), by_age.end());
  for (std::size_t i = 0; i < drop; ++i) clients_.erase(by_age[i].second);
}

}  // namespace llmq
