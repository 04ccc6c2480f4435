#include "api/status_page.h"

#include <string>

#include "assets/assets.h"
#include "util/base64.h"
#include "util/sha256.h"

namespace llmq {
namespace {

namespace bhttp = boost::beast::http;

// The text between the first `<tag>` and its `</tag>`, or nothing.
std::string_view inline_element(std::string_view page, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const auto begin = page.find(open);
  if (begin == std::string_view::npos) return {};
  const auto from = begin + open.size();
  const auto end = page.find(close, from);
  if (end == std::string_view::npos) return {};
  return page.substr(from, end - from);
}

// A CSP source for an inline element: 'sha256-<base64 of the digest>'.
std::string hash_source(std::string_view text) {
  const std::string hex = sha256_hex(text);
  std::string digest;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    digest.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return "'sha256-" + base64_encode(digest) + "'";
}

}  // namespace

std::string status_page_csp(std::string_view page) {
  return "default-src 'none'; script-src " + hash_source(inline_element(page, "script")) +
         "; style-src " + hash_source(inline_element(page, "style")) +
         "; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
         "frame-ancestors 'none'";
}

http::Response status_page_response(bool keep_alive) {
  static const std::string csp = status_page_csp(assets::kStatusPage);
  http::Response res{bhttp::status::ok, 11};
  res.set(bhttp::field::content_type, "text/html; charset=utf-8");
  res.set(bhttp::field::cache_control, "no-cache");
  res.set(bhttp::field::server, "llmq");
  res.set("Content-Security-Policy", csp);
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.keep_alive(keep_alive);
  res.body() = std::string(assets::kStatusPage);
  res.prepare_payload();
  return res;
}

}  // namespace llmq
