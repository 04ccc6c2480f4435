#include "api/client_identity.h"

#include <boost/asio/ip/address.hpp>
#include <stdexcept>

namespace llmq {
namespace {

namespace ip = boost::asio::ip;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The address in canonical text, IPv4-mapped IPv6 as IPv4; empty when it is none.
std::string normalised(std::string_view text) {
  boost::system::error_code ec;
  ip::address a = ip::make_address(std::string(trim(text)), ec);
  if (ec) return {};
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = ip::make_address_v4(ip::v4_mapped, a.to_v6());
  return a.to_string();
}

}  // namespace

std::string address_group(std::string_view address) {
  boost::system::error_code ec;
  ip::address a = ip::make_address(std::string(address), ec);
  if (ec) return std::string(address);
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = ip::make_address_v4(ip::v4_mapped, a.to_v6());
  if (a.is_v4()) return a.to_string();
  ip::address_v6::bytes_type bytes = a.to_v6().to_bytes();
  for (std::size_t i = 8; i < bytes.size(); ++i) bytes[i] = 0;
  return ip::address_v6(bytes).to_string() + "/64";
}

ClientIdentity::ClientIdentity(std::string_view trusted_proxies) {
  while (!trusted_proxies.empty()) {
    const std::size_t comma = trusted_proxies.find(',');
    const std::string_view item = trim(trusted_proxies.substr(0, comma));
    trusted_proxies = comma == std::string_view::npos ? std::string_view{} : trusted_proxies.substr(comma + 1);
    if (item.empty()) continue;
    std::string address = normalised(item);
    if (address.empty())
      throw std::invalid_argument("--trusted-proxies: \"" + std::string(item) + "\" is not an IP address");
    trusted_.push_back(std::move(address));
  }
}

bool ClientIdentity::trusts(std::string_view address) const {
  const std::string a = normalised(address);
  for (const std::string& t : trusted_)
    if (t == a) return true;
  return false;
}

std::string ClientIdentity::of(std::string_view peer, std::string_view x_forwarded_for) const {
  std::string_view client = peer;
  if (!x_forwarded_for.empty() && trusts(peer)) {
    // From the right: each trusted proxy appended the address it got the request from.
    std::string_view rest = x_forwarded_for;
    while (!rest.empty()) {
      const std::size_t comma = rest.rfind(',');
      const std::string_view hop = trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
      if (normalised(hop).empty()) break;  // garbage: stop at the last address we could trust
      client = hop;
      if (!trusts(hop)) break;
    }
  }
  return "ip:" + address_group(trim(client));
}

}  // namespace llmq
