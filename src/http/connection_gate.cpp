#include "http/connection_gate.h"

#include <utility>

namespace llmq::http {

std::shared_ptr<ConnectionGate> ConnectionGate::make(std::size_t max_open) {
  return std::make_shared<ConnectionGate>(max_open);
}

ConnectionGate::Ticket::Ticket(std::shared_ptr<ConnectionGate> gate,
                               std::atomic<std::size_t>* counter)
    : gate_(std::move(gate)), counter_(counter) {}

ConnectionGate::Ticket::Ticket(Ticket&& other) noexcept
    : gate_(std::move(other.gate_)), counter_(std::exchange(other.counter_, nullptr)) {}

ConnectionGate::Ticket& ConnectionGate::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    if (counter_ != nullptr) counter_->fetch_sub(1, std::memory_order_relaxed);
    gate_ = std::move(other.gate_);
    counter_ = std::exchange(other.counter_, nullptr);
  }
  return *this;
}

ConnectionGate::Ticket::~Ticket() {
  if (counter_ != nullptr) counter_->fetch_sub(1, std::memory_order_relaxed);
}

std::optional<ConnectionGate::Ticket> ConnectionGate::try_open() {
  return try_take(open_, max_open_);
}

std::optional<ConnectionGate::Ticket> ConnectionGate::try_refuse() {
  return try_take(refusing_, kMaxRefusing);
}

std::optional<ConnectionGate::Ticket> ConnectionGate::try_take(std::atomic<std::size_t>& counter,
                                                               std::size_t limit) {
  std::size_t now = counter.load(std::memory_order_relaxed);
  do {
    if (now >= limit) return std::nullopt;
  } while (!counter.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  return Ticket(shared_from_this(), &counter);
}

std::size_t connections_within(std::uint64_t fd_limit) {
  constexpr std::uint64_t kProcessOwn = 64;  // everything but connections
  constexpr std::uint64_t kReserved = kProcessOwn + ConnectionGate::kMaxRefusing + 1;  // + spare
  if (fd_limit <= kReserved) return 1;
  const std::uint64_t fit = fd_limit - kReserved;
  return fit > SIZE_MAX ? SIZE_MAX : static_cast<std::size_t>(fit);
}

}  // namespace llmq::http
