// UTF-8 helpers for streaming text that arrives as token pieces, which may split a character.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace llmq {

// True when `text` is entirely well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view text);

struct Utf8Split {
  std::string text;       // the complete characters, each ill-formed sequence replaced by U+FFFD
  std::size_t consumed;   // bytes of the input that `text` covers; the rest is an incomplete
                          // (but so far well-formed) character to keep until more bytes arrive
};

// Splits `bytes` into the part that can be emitted now and a trailing incomplete character.
// At most 3 bytes are ever left unconsumed.
Utf8Split take_complete_utf8(std::string_view bytes);

}  // namespace llmq
