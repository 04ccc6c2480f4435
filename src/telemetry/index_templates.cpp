#include "telemetry/index_templates.h"

#include <charconv>

#include "assets/assets.h"
#include "telemetry/request_document.h"

namespace llmq::telemetry {
namespace {

// Data stream lifecycle settings in index templates arrived in Elasticsearch 8.14.
constexpr std::pair<int, int> kOldestSupported{8, 14};

IndexTemplate load(std::string name, std::string_view json, const std::string& retention) {
  IndexTemplate t{std::move(name), nlohmann::json::parse(json)};
  nlohmann::json& lifecycle = t.body["template"]["lifecycle"];
  if (retention.empty())
    lifecycle.erase("data_retention");
  else
    lifecycle["data_retention"] = retention;
  return t;
}

std::string describe_failure(const std::string& what, const std::string& url, const HttpResponse& r,
                             const std::string& privilege = "the manage_index_templates cluster privilege") {
  if (r.status == 0) return "cannot reach Elasticsearch at " + url + ": " + r.body;
  if (r.status == 401)
    return "Elasticsearch at " + url + " refused the credentials (401); set --elastic-api-key "
           "or --elastic-user/--elastic-password";
  if (r.status == 403)
    return "Elasticsearch at " + url + " forbids " + what +
           " (403): the user needs " + privilege;
  return what + " failed: HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 500);
}

// version.number from GET /, or from the local node's info where the root endpoint is not
// installed (distributions without the rest-root module).
std::string cluster_version(ElasticClient& client, const std::string& url) {
  HttpResponse r = client.request("GET", "/");
  if (r.status == 200) {
    const auto root = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (root.is_object() && root.contains("version") && root["version"].is_object())
      return root["version"].value("number", std::string{});
    return {};
  }
  if (r.status != 404 && r.status != 405) throw SetupError(describe_failure("GET /", url, r));
  r = client.request("GET", "/_nodes/_local?filter_path=nodes.*.version");
  if (r.status != 200) throw SetupError(describe_failure("GET /_nodes/_local", url, r));
  const auto info = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (!info.is_object() || !info.contains("nodes") || !info["nodes"].is_object()) return {};
  for (const auto& node : info["nodes"])
    if (node.is_object() && node.contains("version") && node["version"].is_string())
      return node["version"].get<std::string>();
  return {};
}

void check_version(ElasticClient& client, const std::string& url) {
  const std::string version = cluster_version(client, url);
  if (version.empty())
    throw SetupError(url + " does not look like Elasticsearch (no version in its answer)");
  if (parse_major_minor(version) < kOldestSupported)
    throw SetupError("Elasticsearch " + version + " is not supported: llmq's index templates need " +
                     std::to_string(kOldestSupported.first) + "." +
                     std::to_string(kOldestSupported.second) + " or newer (data stream lifecycle)");
}

std::string error_type(const HttpResponse& r) {
  const auto answer = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (!answer.is_object() || !answer.contains("error") || !answer["error"].is_object()) return {};
  return answer["error"].value("type", std::string{});
}

// A distribution without the data streams module (Elasticsearch's integ-test one) has no
// _data_stream API: no handler takes the request.
bool no_such_api(const HttpResponse& r) {
  return r.status == 405 || (r.status == 400 && r.body.find("no handler found") != std::string::npos);
}

// Without PUT _data_stream, the stream's first write creates it from the template, as any write
// would; that placeholder is deleted at once, leaving the stream empty. False: it existed.
bool create_by_first_write(ElasticClient& client, const std::string& stream, const std::string& url) {
  const HttpResponse exists = client.request("GET", "/" + stream + "/_mapping");
  if (exists.status == 200) return false;
  if (exists.status != 404)
    throw SetupError(describe_failure("reading data stream " + stream, url, exists,
                                      "the view_index_metadata privilege on " + stream));
  const std::string id = "llmq-setup-placeholder";
  const nlohmann::json placeholder{{"@timestamp", iso8601_ms(std::chrono::system_clock::now())}};
  const HttpResponse made = client.request("PUT", "/" + stream + "/_create/" + id, placeholder.dump());
  if (made.status != 201)
    throw SetupError(describe_failure("creating data stream " + stream, url, made,
                                      "the create_index and create_doc privileges on " + stream));
  const auto answer = nlohmann::json::parse(made.body, nullptr, /*allow_exceptions=*/false);
  const std::string index = answer.is_object() ? answer.value("_index", std::string{}) : std::string{};
  if (index.empty())
    throw SetupError("creating data stream " + stream + ": no _index in the answer " + made.body.substr(0, 300));
  const HttpResponse deleted = client.request("DELETE", "/" + index + "/_doc/" + id + "?refresh=true");
  if (deleted.status != 200)
    throw SetupError(describe_failure("deleting the placeholder document of " + stream, url, deleted,
                                      "the delete privilege on " + stream));
  return true;
}

}  // namespace

std::pair<int, int> parse_major_minor(const std::string& version) {
  int major = 0;
  int minor = 0;
  const char* end = version.data() + version.size();
  auto [p, e] = std::from_chars(version.data(), end, major);
  if (e != std::errc{} || p == end || *p != '.') return {0, 0};
  auto [q, e2] = std::from_chars(p + 1, end, minor);
  if (e2 != std::errc{}) return {0, 0};
  (void)q;
  return {major, minor};
}

std::vector<IndexTemplate> index_templates(const TemplateOptions& options) {
  return {load("logs-llmq.requests", assets::kRequestsIndexTemplate, options.requests_retention),
          load("metrics-llmq.runtime", assets::kRuntimeIndexTemplate, options.runtime_retention)};
}

std::vector<std::string> install_index_templates(ElasticClient& client,
                                                 const TemplateOptions& options) {
  const std::string url = client.base_url();
  check_version(client, url);
  std::vector<std::string> lines;
  for (const IndexTemplate& t : index_templates(options)) {
    const HttpResponse r = client.request("PUT", "/_index_template/" + t.name, t.body.dump());
    if (r.status != 200)
      throw SetupError(describe_failure("installing index template " + t.name, url, r));
    const auto& lifecycle = t.body["template"]["lifecycle"];
    lines.push_back("index template " + t.name + " (version " + t.body["version"].dump() +
                    ", patterns " + t.body["index_patterns"].dump() + ", retention " +
                    (lifecycle.contains("data_retention")
                         ? lifecycle["data_retention"].get<std::string>()
                         : std::string("forever")) +
                    ") installed");
  }
  return lines;
}

std::vector<std::string> create_data_streams(ElasticClient& client,
                                             const std::string& stream_namespace) {
  const std::string url = client.base_url();
  std::vector<std::string> lines;
  for (const IndexTemplate& t : index_templates({})) {
    const std::string stream = t.name + "-" + stream_namespace;
    const HttpResponse r = client.request("PUT", "/_data_stream/" + stream);
    bool created = false;
    if (r.status == 200) {
      created = true;
    } else if (no_such_api(r)) {
      created = create_by_first_write(client, stream, url);
    } else if (error_type(r) != "resource_already_exists_exception") {
      throw SetupError(describe_failure("creating data stream " + stream, url, r,
                                        "the create_index privilege on " + stream));
    }
    if (created) {
      lines.push_back("data stream " + stream + " created");
      continue;
    }
    // A stream from an older llmq gets the fields added since, without waiting for a rollover.
    const HttpResponse m =
        client.request("PUT", "/" + stream + "/_mapping", t.body["template"]["mappings"].dump());
    if (m.status != 200)
      throw SetupError(describe_failure("updating the mappings of data stream " + stream, url, m,
                                        "the manage privilege on " + stream));
    lines.push_back("data stream " + stream + " exists; its mappings are up to date");
  }
  return lines;
}

}  // namespace llmq::telemetry
