#include "http/sse.h"

namespace llmq::http {

std::string sse_event(std::int64_t id, std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(event.size() + data.size() + 32);
  out.append("id: ").append(std::to_string(id)).append("\nevent: ").append(event);
  out.append("\ndata: ").append(data).append("\n\n");
  return out;
}

std::string sse_comment(std::string_view text) {
  std::string out(": ");
  out.append(text).append("\n\n");
  return out;
}

}  // namespace llmq::http
