// ClientConnections: how many connections each client holds, against --client-max-connections,
// so that one client cannot take every connection the server has (idle keep-alives, or slow
// bodies) from everyone else. A client is whatever key the server's owner gives an address
// (its /64 for IPv6; none for a trusted proxy, which is never limited here).
//
// Thread-safe (one mutex); an entry lives while its client holds a connection. Shared: each
// Hold keeps it, like ConnectionGate's tickets.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace llmq::http {

class ClientConnections : public std::enable_shared_from_this<ClientConnections> {
 public:
  static std::shared_ptr<ClientConnections> make(std::size_t max_per_client);

  // One connection of one client, given back when destroyed. Move-only.
  class Hold {
   public:
    Hold(std::shared_ptr<ClientConnections> owner, std::string client);
    Hold(Hold&& other) noexcept = default;
    Hold& operator=(Hold&& other) noexcept = default;
    ~Hold();

   private:
    std::shared_ptr<ClientConnections> owner_;  // null once moved from
    std::string client_;
  };

  // A place for one more connection of `client`, or nullopt when it holds max_per_client.
  std::optional<Hold> try_hold(const std::string& client);
  std::size_t held_by(const std::string& client) const;

  explicit ClientConnections(std::size_t max_per_client) : max_(max_per_client) {}

 private:
  void release(const std::string& client);

  const std::size_t max_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> held_;  // clients with at least one connection
};

}  // namespace llmq::http
