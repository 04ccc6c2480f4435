// Cross-origin access (CORS): which web origins a browser may let call llmq, and the headers
// that tell the browser so (the Fetch standard's CORS protocol).
//
// Off by default: with no origins configured, no answer carries an Access-Control-* header and
// a browser's preflight is refused (403), so nothing changes for an operator who did not ask.
// An origin is matched exactly (scheme, host and port, as the browser sends it in `Origin`), or
// `*` allows every origin. Credentials (cookies, HTTP auth) are allowed only for origins listed
// by name, never with `*` (browsers refuse that pair anyway; parse() refuses it first).
//
// Immutable once built; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmq {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

class CorsPolicy {
 public:
  CorsPolicy() = default;  // allows no origin
  // `origins`: comma-separated, each `*` or `scheme://host[:port]`. Throws std::invalid_argument
  // naming the bad entry, or when `credentials` is asked together with `*`.
  static CorsPolicy parse(std::string_view origins, bool credentials, int max_age_s = 600);

  bool enabled() const { return any_ || !origins_.empty(); }
  bool allows(std::string_view origin) const;

  // The headers of an answer to a (non-preflight) request that came with `origin` (empty: a
  // same-origin or non-browser request). Empty when the origin is not allowed; otherwise
  // Access-Control-Allow-Origin, -Expose-Headers (llmq's own response headers), -Allow-
  // Credentials when configured. Vary: Origin whenever the answer depends on the origin.
  HeaderList for_request(std::string_view origin) const;

  // A preflight (OPTIONS with Access-Control-Request-Method) from `origin` to a route that takes
  // `methods` (e.g. "POST, OPTIONS"): the headers that allow it, or nullopt when the origin is
  // not allowed or the method is not one of the route's. The requested headers are allowed as
  // asked when each is a valid header name (browser SDKs send their own, e.g. x-stainless-*).
  std::optional<HeaderList> for_preflight(std::string_view origin, std::string_view methods,
                                          std::string_view requested_method,
                                          std::string_view requested_headers) const;

 private:
  std::vector<std::string> origins_;  // exact origins, lower-cased scheme and host
  bool any_ = false;                  // `*`
  bool credentials_ = false;          // Access-Control-Allow-Credentials: true
  int max_age_s_ = 600;               // how long a browser may cache a preflight
};

}  // namespace llmq
