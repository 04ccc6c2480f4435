// A small Elasticsearch client over libcurl: `_bulk` with `create` actions, and plain requests
// for the set-up, tests and health checks. Kibana takes the same credentials, so the Kibana
// import talks through it too (with its `kbn-xsrf` header).
//
// Every document is sent as {"create":{"_index":<stream>,"_id":<id>}}: a second send of the
// same id is answered 409 version_conflict_engine_exception, which means "already stored" and
// counts as success, so retries never duplicate a document. (With data streams this holds
// within one backing index; a retry that crosses a rollover could store a second copy.)
//
// Threading: one client per thread. It keeps one curl handle (and so one kept-alive
// connection); nothing is shared between clients but libcurl's global init, done once.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "telemetry/spool.h"

namespace llmq::telemetry {

struct ElasticConfig {
  std::string url;       // base URL, e.g. http://127.0.0.1:9200
  std::string api_key;   // sent as "Authorization: ApiKey <api_key>" (the encoded id:key)
  std::string username;  // basic auth, used when api_key is empty
  std::string password;
  std::string ca_file;   // PEM bundle to verify the server with; empty: the system's
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{15000};
  std::string refresh;   // `refresh` parameter of _bulk ("", "true", "wait_for"); tests only
  std::vector<std::string> headers;  // more request headers ("kbn-xsrf: true" for Kibana)
};

enum class ItemOutcome {
  stored,    // created now, or already there (409 on create)
  retry,     // 429, 5xx, or the request as a whole failed (network, timeout, any status but
             // 200, 400 and 413: a wrong URL or credentials must not dead-letter documents)
  rejected,  // the document was refused (item 400 mapping error…, request 400/413): dead-letter
};

struct ItemResult {
  ItemOutcome outcome = ItemOutcome::retry;
  int status = 0;      // the item's HTTP status, or the request's, or 0 for a network error
  std::string reason;  // why it was not stored (empty when stored)
};

struct HttpResponse {
  long status = 0;     // 0: no response (network error, timeout)
  std::string body;    // the response body, or curl's error text when status is 0
};

class ElasticClient {
 public:
  explicit ElasticClient(ElasticConfig config);
  ~ElasticClient();
  ElasticClient(const ElasticClient&) = delete;
  ElasticClient& operator=(const ElasticClient&) = delete;

  // One result per record, in the same order. Never throws for what Elasticsearch or the
  // network does.
  std::vector<ItemResult> bulk(const std::vector<SpoolRecord>& records);

  // The base URL, credentials masked, for messages.
  std::string base_url() const;

  // A plain request: path is appended to the base URL ("/_cluster/health").
  HttpResponse request(const std::string& method, const std::string& path,
                       const std::string& body = {}, const std::string& content_type = "application/json");

 private:
  ElasticConfig config_;
  void* curl_ = nullptr;  // CURL*, kept to reuse the connection
};

// Classifies a `_bulk` answer (exposed for tests): `status` and `body` of the response, `count`
// the number of documents sent.
std::vector<ItemResult> classify_bulk_response(const HttpResponse& response, std::size_t count);

// The NDJSON body of a `_bulk` request of create actions.
std::string bulk_body(const std::vector<SpoolRecord>& records);

}  // namespace llmq::telemetry
