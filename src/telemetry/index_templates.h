// The index templates of llmq's two data streams (logs-llmq.requests-*, metrics-llmq.runtime-*):
// explicit mappings for every field llmq writes (`dynamic: false`, so a stray field never turns
// into a mapping) and the data stream lifecycle's retention. The JSON lives in elastic/ and is
// embedded in the binary (assets/assets.h).
//
// Installing is idempotent: PUT _index_template/<name> replaces the template with the same body.
// A template applies to backing indices created after it; an existing data stream takes new
// mappings at its next rollover.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "telemetry/elastic_client.h"

namespace llmq::telemetry {

struct IndexTemplate {
  std::string name;     // e.g. "logs-llmq.requests", also the data stream's type-dataset
  nlohmann::json body;  // the body of PUT _index_template/<name>
};

struct TemplateOptions {
  std::string requests_retention = "30d";  // data_retention of the requests stream; "": forever
  std::string runtime_retention = "7d";    // of the runtime stream; "": forever
};

// A reason the set-up cannot go on, for the user (e.g. "Elasticsearch 7.17.0 is too old: ...").
class SetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::vector<IndexTemplate> index_templates(const TemplateOptions& options);

// Checks that the cluster answers and is new enough (8.14+: lifecycle in templates), then puts
// both templates. Returns one line per template for the user. Throws SetupError.
std::vector<std::string> install_index_templates(ElasticClient& client,
                                                 const TemplateOptions& options);

// Creates the data streams logs-llmq.requests-<stream_namespace> and
// metrics-llmq.runtime-<stream_namespace>, empty, with the installed templates' mappings, so
// that Kibana's data views have fields before llmq's first document (PUT _data_stream; where a
// distribution lacks that API, a placeholder document creates the stream and is deleted). One
// that exists already gets the templates' mappings (fields added by a newer llmq; a changed type
// is refused).
// Returns one line per stream for the user. Throws SetupError.
std::vector<std::string> create_data_streams(ElasticClient& client,
                                             const std::string& stream_namespace);

// "8.15.1" -> {8, 15}; nullopt-like {0, 0} when unreadable.
std::pair<int, int> parse_major_minor(const std::string& version);

}  // namespace llmq::telemetry
