#include "telemetry/elastic_client.h"

#include <curl/curl.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "util/url.h"

namespace llmq::telemetry {
namespace {

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

bool retryable_status(long status) {
  // 401/403 are configuration errors, not the document's fault: keep the documents until the
  // credentials are fixed rather than dead-letter everything.
  return status == 429 || status >= 500 || status == 401 || status == 403;
}

// For the request as a whole only 400 (a body Elasticsearch cannot read) and 413 (too large) are
// about the documents. Anything else (a wrong URL's 404, a proxy's 3xx or 407) is the path to
// Elasticsearch failing: the documents wait in the spool until it is fixed.
bool request_refuses_documents(long status) { return status == 400 || status == 413; }

std::vector<ItemResult> all_items(std::size_t count, ItemOutcome outcome, int status, const std::string& reason) {
  return std::vector<ItemResult>(count, ItemResult{outcome, status, reason});
}

ItemResult classify_item(const nlohmann::json& item) {
  // Each item is {"create": {...}}; take the one action whatever its name.
  if (!item.is_object() || item.empty()) return {ItemOutcome::retry, 0, "malformed bulk item"};
  const auto& body = item.begin().value();
  const int status = body.value("status", 0);
  if ((status >= 200 && status < 300) || status == 409) return {ItemOutcome::stored, status, {}};
  std::string reason = "status " + std::to_string(status);
  if (body.contains("error") && body["error"].is_object()) {
    reason = body["error"].value("type", std::string{}) + ": " + body["error"].value("reason", std::string{});
  }
  if (retryable_status(status)) return {ItemOutcome::retry, status, reason};
  return {ItemOutcome::rejected, status, reason};
}

}  // namespace

std::string bulk_body(const std::vector<SpoolRecord>& records) {
  std::string body;
  for (const auto& r : records) {
    const nlohmann::json action = {{"create", {{"_index", r.stream}, {"_id", r.id}}}};
    body += action.dump();
    body += '\n';
    body += r.doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    body += '\n';
  }
  return body;
}

std::vector<ItemResult> classify_bulk_response(const HttpResponse& response, std::size_t count) {
  if (response.status == 0) return all_items(count, ItemOutcome::retry, 0, "network: " + response.body);
  const std::string head = response.body.substr(0, 300);
  if (request_refuses_documents(response.status)) {
    return all_items(count, ItemOutcome::rejected, static_cast<int>(response.status), head);
  }
  if (response.status != 200) {
    return all_items(count, ItemOutcome::retry, static_cast<int>(response.status), head);
  }
  const auto json = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("items") || !json["items"].is_array() ||
      json["items"].size() != count) {
    // An answer we cannot map to the documents: send them again (create makes that safe).
    return all_items(count, ItemOutcome::retry, 200, "unreadable bulk response: " + head);
  }
  std::vector<ItemResult> results;
  results.reserve(count);
  for (const auto& item : json["items"]) results.push_back(classify_item(item));
  return results;
}

ElasticClient::ElasticClient(ElasticConfig config) : config_(std::move(config)) {
  global_init_once();
  while (!config_.url.empty() && config_.url.back() == '/') config_.url.pop_back();
  curl_ = curl_easy_init();
}

std::string ElasticClient::base_url() const { return mask_url_credentials(config_.url); }

ElasticClient::~ElasticClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResponse ElasticClient::request(const std::string& method, const std::string& path,
                                    const std::string& body, const std::string& content_type) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);  // keeps the connection cache, clears the last request's options
  HttpResponse response;
  const std::string url = config_.url + path;
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
  for (const std::string& header : config_.headers) headers = curl_slist_append(headers, header.c_str());
  if (!config_.api_key.empty()) {
    headers = curl_slist_append(headers, ("Authorization: ApiKey " + config_.api_key).c_str());
  } else if (!config_.username.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, config_.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, config_.password.c_str());
  }
  if (!config_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, config_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!body.empty() || method == "POST" || method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: we run in threads
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  const CURLcode code = curl_easy_perform(curl);
  if (code == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  } else {
    response.status = 0;
    response.body = curl_easy_strerror(code);
  }
  curl_slist_free_all(headers);
  return response;
}

std::vector<ItemResult> ElasticClient::bulk(const std::vector<SpoolRecord>& records) {
  if (records.empty()) return {};
  std::string path = "/_bulk";
  if (!config_.refresh.empty()) path += "?refresh=" + config_.refresh;
  const HttpResponse response = request("POST", path, bulk_body(records), "application/x-ndjson");
  return classify_bulk_response(response, records.size());
}

}  // namespace llmq::telemetry
