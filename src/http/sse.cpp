#include "http/sse.h"

namespace llmq::http {
namespace {

// Appends `prefix` + line + "\n" for each line of `text`, where CRLF, CR and LF end a line (the
// three line ends of the event-stream format); an empty `text` is one empty line.
void append_lines(std::string& out, std::string_view prefix, std::string_view text) {
  while (true) {
    const std::size_t end = text.find_first_of("\r\n");
    out.append(prefix).append(text.substr(0, end)).push_back('\n');
    if (end == std::string_view::npos) return;
    const std::size_t next = text.compare(end, 2, "\r\n") == 0 ? end + 2 : end + 1;
    text.remove_prefix(next);
  }
}

}  // namespace

std::string sse_event(std::int64_t id, std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(event.size() + data.size() + 32);
  out.append("id: ").append(std::to_string(id)).append("\nevent: ");
  for (const char c : event) {
    if (c != '\r' && c != '\n') out.push_back(c);
  }
  out.push_back('\n');
  append_lines(out, "data: ", data);
  out.push_back('\n');
  return out;
}

std::string sse_comment(std::string_view text) {
  std::string out;
  append_lines(out, ": ", text);
  out.push_back('\n');
  return out;
}

}  // namespace llmq::http
