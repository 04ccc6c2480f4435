// Server-Sent Events framing (the text/event-stream format).
//
// Total for any input: a client that follows the event-stream rules reads back exactly what was
// framed, up to what the format cannot carry (see each function).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace llmq::http {

// One event: "id: N\nevent: NAME\ndata: LINE\n" with one data line per line of `data`, then a
// blank line. The client joins the data lines with LF, so every CRLF, CR or LF in `data` reads
// back as LF (JSON data has none). Line breaks in `event` are dropped.
std::string sse_event(std::int64_t id, std::string_view event, std::string_view data);

// A comment, which clients ignore; keeps a connection alive through proxies. Each line of
// `text` becomes a comment line, so no part of it can be read as a field.
std::string sse_comment(std::string_view text);

}  // namespace llmq::http
