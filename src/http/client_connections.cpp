#include "http/client_connections.h"

namespace llmq::http {

std::shared_ptr<ClientConnections> ClientConnections::make(std::size_t max_per_client) {
  return std::make_shared<ClientConnections>(max_per_client);
}

ClientConnections::Hold::Hold(std::shared_ptr<ClientConnections> owner, std::string client)
    : owner_(std::move(owner)), client_(std::move(client)) {}

ClientConnections::Hold::~Hold() {
  if (owner_) owner_->release(client_);
}

std::optional<ClientConnections::Hold> ClientConnections::try_hold(const std::string& client) {
  {
    std::lock_guard lock(mutex_);
    std::size_t& held = held_[client];
    if (held >= max_) {
      if (held == 0) held_.erase(client);
      return std::nullopt;
    }
    ++held;
  }
  return Hold(shared_from_this(), client);
}

std::size_t ClientConnections::held_by(const std::string& client) const {
  std::lock_guard lock(mutex_);
  const auto it = held_.find(client);
  return it == held_.end() ? 0 : it->second;
}

void ClientConnections::release(const std::string& client) {
  std::lock_guard lock(mutex_);
  const auto it = held_.find(client);
  if (it == held_.end()) return;
  if (--it->second == 0) held_.erase(it);
}

}  // namespace llmq::http
