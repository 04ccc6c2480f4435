#include "telemetry/index_templates.h"

#include <charconv>

#include "assets/assets.h"

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

std::string describe_failure(const std::string& what, const std::string& url,
                             const HttpResponse& r) {
  if (r.status == 0) return "cannot reach Elasticsearch at " + url + ": " + r.body;
  if (r.status == 401)
    return "Elasticsearch at " + url + " refused the credentials (401); set --elastic-api-key "
           "or --elastic-user/--elastic-password";
  if (r.status == 403)
    return "Elasticsearch at " + url + " forbids " + what +
           " (403): the user needs the manage_index_templates cluster privilege";
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

}  // namespace llmq::telemetry
