// Who a request comes from, for per-client limits and throttles when it presents no API key:
// its address, with two corrections.
//
//   - Behind a proxy every request comes from the proxy. Only when the connection's peer is one
//     of the configured trusted proxies (--trusted-proxies) is X-Forwarded-For read, from the
//     right, past the trusted proxies, to the first address they did not add; from anyone else
//     the header is ignored, since any client can write it.
//   - An IPv6 host is given a whole /64 and can rotate through it at will, so IPv6 clients
//     count per /64. IPv4-mapped IPv6 addresses count as the IPv4 address.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmq {

class ClientIdentity {
 public:
  ClientIdentity() = default;
  // `trusted_proxies`: comma-separated addresses; throws std::invalid_argument on a bad one.
  explicit ClientIdentity(std::string_view trusted_proxies);

  // "ip:<address>" or "ip:<prefix>::/64" for the client behind `peer`.
  std::string of(std::string_view peer, std::string_view x_forwarded_for) const;
  bool trusts(std::string_view address) const;

 private:
  std::vector<std::string> trusted_;  // normalised addresses
};

// The address as its group: an IPv4 address itself, an IPv6 one its /64 ("2001:db8:1:2::/64");
// text that is no address is returned as is.
std::string address_group(std::string_view address);

}  // namespace llmq
