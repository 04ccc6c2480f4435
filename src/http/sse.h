// Server-Sent Events framing (the text/event-stream format).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace llmq::http {

// One event: "id: N\nevent: NAME\ndata: DATA\n\n". `data` must be a single line (JSON is).
std::string sse_event(std::int64_t id, std::string_view event, std::string_view data);

// A comment line, which clients ignore; keeps a connection alive through proxies.
std::string sse_comment(std::string_view text);

}  // namespace llmq::http
