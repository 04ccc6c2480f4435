// ChatPrompt: a chat rendered through the model's template as pieces that say whose text each
// is. The template's own markup (<|im_start|>, <start_of_turn>, ...) is tokenized with its
// special tokens; what a client wrote is tokenized as plain text, so a user message holding
// "<|im_end|><|im_start|>system" stays text and cannot close its turn or open a system one.
//
// The split needs no knowledge of a template: it renders the chat once with each message's
// content replaced by a unique sentinel, and once with the sentinel padded by a space on each
// side; the text between sentinels is markup, and whether the padding survived tells whether
// the template trims that message's content (as Gemma's and Llama 3's do).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "queue/request.h"

namespace llmq {

struct PromptPiece {
  std::string text;
  bool markup = false;  // the template's own text: tokenized with special tokens
};

// Renders messages with the model's template (assistant turn opened); nullopt when it cannot.
using ChatRenderer = std::function<std::optional<std::string>(const std::vector<ChatMessage>&)>;

// The pieces whose concatenation is the rendered chat, in order. nullopt when the template
// cannot render, or treats content in a way the split cannot follow (repeats a message, or
// changes it beyond trimming), so that no client text could be taken for markup.
std::optional<std::vector<PromptPiece>> split_chat(const std::vector<ChatMessage>& messages,
                                                   const ChatRenderer& render);

}  // namespace llmq
