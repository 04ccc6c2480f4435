#include "engine/text_stream.h"

#include <algorithm>

#include "util/utf8.h"

namespace llmq {
namespace {

// Text for bytes that end the stream: complete characters, then U+FFFD for a cut-off one.
std::string drain_utf8(std::string_view bytes) {
  Utf8Split split = take_complete_utf8(bytes);
  if (split.consumed < bytes.size()) split.text += "\xEF\xBF\xBD";
  return std::move(split.text);
}

}  // namespace

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {}

TextStream::Output TextStream::push(std::string_view piece) {
  pending_.append(piece);

  // Everything before pending_ was checked already, so a match starts inside pending_.
  std::size_t first_match = std::string::npos;
  for (const std::string& s : stop_) first_match = std::min(first_match, pending_.find(s));
  if (first_match != std::string::npos) {
    Output out{drain_utf8(std::string_view(pending_).substr(0, first_match)), true};
    pending_.clear();
    return out;
  }

  const std::size_t releasable = pending_.size() - stop_prefix_suffix();
  Utf8Split split = take_complete_utf8(std::string_view(pending_).substr(0, releasable));
  pending_.erase(0, split.consumed);
  return {std::move(split.text), false};
}

std::string TextStream::finish() {
  std::string out = drain_utf8(pending_);
  pending_.clear();
  return out;
}

std::size_t TextStream::stop_prefix_suffix() const {
  std::size_t longest = 0;
  const std::string_view pending(pending_);
  for (const std::string& s : stop_) {
    const std::size_t max_len = std::min(s.size() - 1, pending.size());
    for (std::size_t len = max_len; len > longest; --len) {
      if (pending.substr(pending.size() - len) == std::string_view(s).substr(0, len)) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

}  // namespace llmq
