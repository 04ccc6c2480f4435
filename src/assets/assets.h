// Files of the repository that the binary carries (embedded at build time by
// cmake/embed_assets.cmake), so `llmq elastic setup`, `llmq kibana setup` and the live page at
// GET / work from the binary alone, e.g. in the Docker image.
#pragma once

#include <string_view>

namespace llmq::assets {

extern const std::string_view kRequestsIndexTemplate;  // elastic/logs-llmq.requests.json
extern const std::string_view kRuntimeIndexTemplate;   // elastic/metrics-llmq.runtime.json
extern const std::string_view kKibanaSavedObjects;     // kibana/llmq-saved-objects.ndjson
extern const std::string_view kStatusPage;             // src/assets/status_page.html

}  // namespace llmq::assets
