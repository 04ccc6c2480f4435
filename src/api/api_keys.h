// API keys: who may use the inference routes, and each key's own client limits.
//
// Keys come from --api-key (one key, or several separated by commas) and --api-key-file (one
// per line: `<key> [name=<name>] [max_concurrent=N] [rate=R] [burst=B]`; a line starting with
// `#`, or the rest of a line after ` #`, is a comment). A key is 8-256 printable ASCII
// characters without spaces, ',' or '#'; any other is refused at start with its file and line. A client
// presents its key as `Authorization: Bearer <key>` (as OpenAI clients do) or `X-API-Key: <key>`.
// Matching compares the presented key with every configured key in time that depends only on
// the presented key's length, never on how much of a secret it got right. Keys are never logged:
// a key is named by its `name` (default: key-<n>, its position).
//
// Immutable after construction; thread-safe to read.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "api/admission.h"

namespace llmq {

struct ApiKey {
  std::string name;                   // for logs, documents and per-client limits
  std::string secret;                 // what the client presents
  std::optional<ClientLimits> limits; // its own limits; nullopt: the server's default
};

class ApiKeys {
 public:
  ApiKeys() = default;
  // Throws std::invalid_argument naming the file and line of a malformed entry.
  static ApiKeys load(std::string_view key_list, const std::string& key_file);

  bool enabled() const { return !keys_.empty(); }
  std::size_t size() const { return keys_.size(); }
  // The key whose secret equals `presented`; nullptr when none does.
  const ApiKey* match(std::string_view presented) const;

 private:
  std::vector<ApiKey> keys_;
};

// The key a request presents (Bearer token or X-API-Key); empty when none.
std::string_view presented_key(std::string_view authorization, std::string_view x_api_key);

// Compares in time that depends on `presented`'s length only.
bool constant_time_equals(std::string_view secret, std::string_view presented);

}  // namespace llmq
