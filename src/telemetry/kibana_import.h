// Imports llmq's Kibana saved objects (two data views, the Lens panels, the dashboard
// "llmq — Inference overview"; kibana/llmq-saved-objects.ndjson, embedded) into a Kibana space,
// overwriting earlier copies, through Kibana's saved-objects import API.
#pragma once

#include <string>

#include "telemetry/elastic_client.h"
#include "telemetry/index_templates.h"

namespace llmq::telemetry {

struct KibanaImportOptions {
  ElasticConfig kibana;   // Kibana's URL and credentials (the Elasticsearch ones work)
  std::string space;      // space id; empty: the default space
};

// Checks Kibana's version (8.8 or newer, the objects' migration version; 9.x too), then
// imports. Returns two lines for the user: how many objects went into which space, and the
// dashboard's address there (its id is llmq's own in the first space Kibana got it in, one
// Kibana chose in any other). Throws
// SetupError with the reason (unreachable, credentials, unsupported version, unknown space,
// per-object errors).
std::string import_kibana_objects(const KibanaImportOptions& options);

// The multipart/form-data body of the import request, with `boundary` (exposed for tests).
std::string import_body(const std::string& boundary, std::string_view ndjson);

}  // namespace llmq::telemetry
