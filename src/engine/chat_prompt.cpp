#include "engine/chat_prompt.h"

#include <string_view>

namespace llmq {
namespace {

// A sentinel no template writes and no tokenizer has a token for: ASCII unit separators
// around a message index.
std::string sentinel(std::size_t i) { return "\x1fllmq-content-" + std::to_string(i) + "\x1f"; }
constexpr std::string_view kSentinelStart = "\x1fllmq-content-";

std::string trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::vector<ChatMessage> with_contents(std::vector<ChatMessage> messages, const char* pad) {
  for (std::size_t i = 0; i < messages.size(); ++i)
    messages[i].content = pad + sentinel(i) + pad;
  return messages;
}

// Where each message's sentinel stands in `rendered`, in message order; nullopt if one is
// missing, out of order or repeated.
std::optional<std::vector<std::size_t>> sentinel_positions(const std::string& rendered,
                                                           std::size_t count) {
  std::vector<std::size_t> at;
  std::size_t from = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string s = sentinel(i);
    const std::size_t pos = rendered.find(s, from);
    if (pos == std::string::npos || rendered.find(s, pos + s.size()) != std::string::npos)
      return std::nullopt;
    at.push_back(pos);
    from = pos + s.size();
  }
  if (rendered.find(kSentinelStart, from) != std::string::npos) return std::nullopt;
  return at;
}

}  // namespace

std::optional<std::vector<PromptPiece>> split_chat(const std::vector<ChatMessage>& messages,
                                                   const ChatRenderer& render) {
  const std::optional<std::string> bare = render(with_contents(messages, ""));
  const std::optional<std::string> padded = render(with_contents(messages, " "));
  if (!bare || !padded) return std::nullopt;
  const auto bare_at = sentinel_positions(*bare, messages.size());
  const auto padded_at = sentinel_positions(*padded, messages.size());
  if (!bare_at || !padded_at) return std::nullopt;

  std::vector<PromptPiece> pieces;
  std::size_t from = 0;         // in bare
  std::size_t padded_from = 0;  // in padded
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string_view markup =
        std::string_view(*bare).substr(from, (*bare_at)[i] - from);
    const std::string_view padded_markup =
        std::string_view(*padded).substr(padded_from, (*padded_at)[i] - padded_from);
    // Kept as sent, the padding shows before the sentinel; trimmed, the markup is all there is.
    bool trimmed = true;
    if (padded_markup.size() == markup.size() + 1 && padded_markup.ends_with(' ') &&
        padded_markup.starts_with(markup)) {
      trimmed = false;
    } else if (padded_markup != markup) {
      return std::nullopt;  // the template did more to the content than trim it
    }
    if (!markup.empty()) pieces.push_back({std::string(markup), true});
    std::string content = trimmed ? trim(messages[i].content) : messages[i].content;
    if (!content.empty()) pieces.push_back({std::move(content), false});
    from = (*bare_at)[i] + sentinel(i).size();
    padded_from = (*padded_at)[i] + sentinel(i).size() + (trimmed ? 0 : 1);
  }
  const std::string_view tail = std::string_view(*bare).substr(from);
  if (!tail.empty()) pieces.push_back({std::string(tail), true});
  return pieces;
}

}  // namespace llmq
