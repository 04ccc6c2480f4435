// ConnectionGate: how many connections a Server holds, against --max-connections. A connection
// is served only with a Ticket, which gives its place back when destroyed.
//
// Refused connections get a place of their own while they are answered (503) and closed, from a
// small separate budget, so that refusing cannot itself use up file descriptors without bound.
//
// Thread safety: everything may be called from any thread (atomics). Ownership: shared; each
// Ticket holds the gate, so a connection's coroutine destroyed after its Server (when the
// io_context goes at shutdown) still finds it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace llmq::http {

class ConnectionGate : public std::enable_shared_from_this<ConnectionGate> {
 public:
  // Refused connections being closed at once, at most (see the header comment).
  static constexpr std::size_t kMaxRefusing = 64;

  // Use make(): tickets need the gate in a shared_ptr.
  static std::shared_ptr<ConnectionGate> make(std::size_t max_open);

  // A place held by one connection until the Ticket is destroyed. Move-only.
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept;
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket();

   private:
    friend class ConnectionGate;
    Ticket(std::shared_ptr<ConnectionGate> gate, std::atomic<std::size_t>* counter);
    std::shared_ptr<ConnectionGate> gate_;  // keeps `counter_` alive
    std::atomic<std::size_t>* counter_;     // what to decrement; null once moved from
  };

  // A place for a connection to be served, or nullopt when max_open are open.
  std::optional<Ticket> try_open();
  // A place for a refused connection while it is answered and closed, or nullopt when
  // kMaxRefusing are being refused already (then close it without a word).
  std::optional<Ticket> try_refuse();

  std::size_t open() const { return open_.load(std::memory_order_relaxed); }
  std::size_t max_open() const { return max_open_; }

  explicit ConnectionGate(std::size_t max_open) : max_open_(max_open) {}

 private:
  std::optional<Ticket> try_take(std::atomic<std::size_t>& counter, std::size_t limit);

  const std::size_t max_open_;           // --max-connections
  std::atomic<std::size_t> open_{0};     // connections being served
  std::atomic<std::size_t> refusing_{0};  // refused connections not closed yet
};

// The connections that fit under a limit of `fd_limit` open descriptors, keeping some for the
// rest of the process (the model, logs, the spool, Elasticsearch's client, the event loop) and
// for the refusals in progress.
std::size_t connections_within(std::uint64_t fd_limit);

}  // namespace llmq::http
