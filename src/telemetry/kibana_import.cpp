#include "telemetry/kibana_import.h"

#include <nlohmann/json.hpp>

#include "assets/assets.h"

namespace llmq::telemetry {
namespace {

constexpr std::pair<int, int> kOldestKibana{8, 8};  // the objects' migration version
constexpr int kNewestKibanaMajor = 9;               // the newest major the objects were checked for
constexpr const char* kBoundary = "llmq-saved-objects-7c1f0a";
constexpr const char* kDashboardId = "llmq-inference-overview";

std::string failure(const std::string& what, const std::string& url, const HttpResponse& r) {
  if (r.status == 0) return "cannot reach Kibana at " + url + ": " + r.body;
  if (r.status == 401)
    return "Kibana at " + url + " refused the credentials (401); set --kibana-api-key or "
           "--kibana-user/--kibana-password";
  if (r.status == 403)
    return "Kibana at " + url + " forbids " + what + " (403): the user needs the Saved Objects "
           "Management privilege in that space";
  return what + " failed: HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 500);
}

nlohmann::json parse_object(const HttpResponse& r) {
  auto json = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  return json.is_object() ? json : nlohmann::json::object();
}

void check_kibana_version(ElasticClient& client, const std::string& url) {
  const HttpResponse r = client.request("GET", "/api/status");
  if (r.status != 200) throw SetupError(failure("GET /api/status", url, r));
  const nlohmann::json status = parse_object(r);
  const std::string version =
      status.contains("version") && status["version"].is_object()
          ? status["version"].value("number", std::string{})
          : std::string{};
  if (version.empty())
    throw SetupError(url + " does not look like Kibana (no version.number in GET /api/status)");
  const auto major_minor = parse_major_minor(version);
  if (major_minor < kOldestKibana || major_minor.first > kNewestKibanaMajor)
    throw SetupError("Kibana " + version + " is not supported: llmq's dashboard needs Kibana " +
                     std::to_string(kOldestKibana.first) + "." +
                     std::to_string(kOldestKibana.second) + " to " +
                     std::to_string(kNewestKibanaMajor) + ".x");
}

// The reasons of a partly failed import, one per object, for the message.
std::string object_errors(const nlohmann::json& answer) {
  std::string out;
  if (!answer.contains("errors") || !answer["errors"].is_array()) return out;
  for (const auto& e : answer["errors"]) {
    if (!e.is_object()) continue;
    std::string reason = e.contains("error") ? e["error"].dump() : std::string("unknown");
    out += "; " + e.value("type", std::string("?")) + " " + e.value("id", std::string("?")) +
           ": " + reason;
  }
  return out;
}

// The URL without user info and trailing '/', for a link the user opens.
std::string link_base(const std::string& url) {
  std::string out = url;
  const std::size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const std::size_t host = scheme + 3;
    const std::size_t at = out.find('@', host);
    if (at != std::string::npos && at < out.find('/', host)) out.erase(host, at + 1 - host);
  }
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out;
}

// The dashboard's id in the space: Kibana keeps llmq's fixed id in the first space it is
// imported into, and gives the copy in any other space an id of its own (destinationId).
std::string dashboard_id(const nlohmann::json& answer) {
  if (!answer.contains("successResults") || !answer["successResults"].is_array()) return kDashboardId;
  for (const auto& r : answer["successResults"]) {
    if (!r.is_object() || r.value("type", std::string{}) != "dashboard" ||
        r.value("id", std::string{}) != kDashboardId)
      continue;
    if (r.contains("destinationId") && r["destinationId"].is_string())
      return r["destinationId"].get<std::string>();
  }
  return kDashboardId;
}

}  // namespace

std::string import_body(const std::string& boundary, std::string_view ndjson) {
  std::string body = "--" + boundary + "\r\n";
  body += "Content-Disposition: form-data; name=\"file\"; filename=\"llmq-saved-objects.ndjson\"\r\n";
  body += "Content-Type: application/ndjson\r\n\r\n";
  body += ndjson;
  body += "\r\n--" + boundary + "--\r\n";
  return body;
}

std::string import_kibana_objects(const KibanaImportOptions& options) {
  ElasticConfig config = options.kibana;
  config.headers.push_back("kbn-xsrf: true");  // Kibana refuses API writes without it
  ElasticClient client(config);
  const std::string url = client.base_url();
  check_kibana_version(client, url);
  const std::string prefix = options.space.empty() ? "" : "/s/" + options.space;
  const HttpResponse r =
      client.request("POST", prefix + "/api/saved_objects/_import?overwrite=true",
                     import_body(kBoundary, assets::kKibanaSavedObjects),
                     std::string("multipart/form-data; boundary=") + kBoundary);
  if (r.status == 404 && !options.space.empty())
    throw SetupError("Kibana at " + url + " has no space \"" + options.space + "\" (404)");
  if (r.status != 200) throw SetupError(failure("importing the saved objects", url, r));
  const nlohmann::json answer = parse_object(r);
  const int count = answer.value("successCount", 0);
  if (!answer.value("success", false))
    throw SetupError("Kibana imported " + std::to_string(count) + " objects but refused others" +
                     object_errors(answer));
  return "imported " + std::to_string(count) + " saved objects (dashboard \"llmq — Inference "
         "overview\") into space " + (options.space.empty() ? "default" : options.space) +
         "\ndashboard: " + link_base(options.kibana.url) + prefix + "/app/dashboards#/view/" +
         dashboard_id(answer);
}

}  // namespace llmq::telemetry
