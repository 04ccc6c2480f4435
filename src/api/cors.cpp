#include "api/cors.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace llmq {
namespace {

// llmq's own response headers a web page may read (the CORS-safelisted ones need no mention).
constexpr std::string_view kExposed = "X-Request-Id, Retry-After";

std::string lower(std::string_view text) {
  std::string out(text);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// RFC 9110's token characters: what a header name (and a method) may be made of.
bool is_token(std::string_view text) {
  constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::ranges::all_of(text, [&](unsigned char c) {
    return std::isalnum(c) != 0 || kExtra.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

// `scheme://host[:port]`, as a browser writes an Origin: no path, query or credentials.
void check_origin(std::string_view origin) {
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument("CORS origin \"" + std::string(origin) + "\": " + why);
  };
  const std::size_t sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) throw bad("must be scheme://host[:port]");
  const std::string_view scheme = origin.substr(0, sep);
  if (!std::ranges::all_of(scheme, [](unsigned char c) {
        return std::isalnum(c) != 0 || c == '+' || c == '-' || c == '.';
      }))
    throw bad("the scheme is not valid");
  const std::string_view rest = origin.substr(sep + 3);
  if (rest.empty()) throw bad("names no host");
  if (rest.find('/') != std::string_view::npos)
    throw bad("an origin has no path (drop everything from the '/' after the host)");
  if (rest.find_first_of("?#@ ") != std::string_view::npos)
    throw bad("an origin has no query, fragment, credentials or spaces");
}

// Each comma-separated header name, when all are tokens; nullopt otherwise.
std::optional<std::string> header_names(std::string_view requested) {
  std::string out;
  while (!requested.empty()) {
    const std::size_t comma = requested.find(',');
    const std::string_view name = trim(requested.substr(0, comma));
    requested = comma == std::string_view::npos ? std::string_view() : requested.substr(comma + 1);
    if (name.empty()) continue;
    if (!is_token(name)) return std::nullopt;
    out += (out.empty() ? "" : ", ") + lower(name);
  }
  return out;
}

bool lists_method(std::string_view methods, std::string_view method) {
  while (!methods.empty()) {
    const std::size_t comma = methods.find(',');
    if (trim(methods.substr(0, comma)) == method) return true;
    if (comma == std::string_view::npos) break;
    methods.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

CorsPolicy CorsPolicy::parse(std::string_view origins, bool credentials, int max_age_s) {
  CorsPolicy policy;
  policy.credentials_ = credentials;
  policy.max_age_s_ = max_age_s;
  while (!origins.empty()) {
    const std::size_t comma = origins.find(',');
    const std::string_view entry = trim(origins.substr(0, comma));
    origins = comma == std::string_view::npos ? std::string_view() : origins.substr(comma + 1);
    if (entry.empty()) continue;
    if (entry == "*") {
      policy.any_ = true;
      continue;
    }
    check_origin(entry);
    policy.origins_.push_back(lower(entry));
  }
  if (policy.any_ && credentials) {
    throw std::invalid_argument(
        "CORS credentials cannot be allowed for every origin (`*`): list the origins by name");
  }
  return policy;
}

bool CorsPolicy::allows(std::string_view origin) const {
  if (origin.empty()) return false;
  if (any_) return true;
  const std::string asked = lower(origin);
  return std::ranges::find(origins_, asked) != origins_.end();
}

HeaderList CorsPolicy::for_request(std::string_view origin) const {
  HeaderList headers;
  // With named origins the answer differs by Origin: caches must keep them apart.
  if (!origins_.empty()) headers.emplace_back("Vary", "Origin");
  if (!allows(origin)) return headers;
  // `*` is sent as `*` (cacheable for every origin) unless credentials need the origin named.
  const bool name_it = !any_ || credentials_;
  headers.emplace_back("Access-Control-Allow-Origin", name_it ? std::string(origin) : "*");
  headers.emplace_back("Access-Control-Expose-Headers", std::string(kExposed));
  if (credentials_ && name_it) headers.emplace_back("Access-Control-Allow-Credentials", "true");
  return headers;
}

std::optional<HeaderList> CorsPolicy::for_preflight(std::string_view origin,
                                                    std::string_view methods,
                                                    std::string_view requested_method,
                                                    std::string_view requested_headers) const {
  if (!allows(origin) || !lists_method(methods, requested_method)) return std::nullopt;
  const std::optional<std::string> names = header_names(requested_headers);
  if (!names) return std::nullopt;
  HeaderList headers = for_request(origin);
  headers.erase(std::ranges::remove(headers, "Access-Control-Expose-Headers",
                                    &HeaderList::value_type::first)
                    .begin(),
                headers.end());
  headers.emplace_back("Access-Control-Allow-Methods", std::string(methods));
  if (!names->empty()) headers.emplace_back("Access-Control-Allow-Headers", *names);
  headers.emplace_back("Access-Control-Max-Age", std::to_string(max_age_s_));
  // The answer also depends on what was asked: a cache must not reuse it for another request.
  headers.emplace_back("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers");
  return headers;
}

}  // namespace llmq
