// TextStream turns the byte pieces of sampled tokens into the text a client may see now.
//
// It holds back two kinds of bytes: a trailing incomplete UTF-8 character (so no event splits a
// character), and a trailing run that could still grow into a stop string (so a stop string is
// never half-sent). One per running sequence; not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmq {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {});

  struct Output {
    std::string text;      // valid UTF-8, possibly empty
    bool stopped = false;  // a stop string matched: `text` ends just before it; stop generating
  };

  // Adds one token's bytes.
  Output push(std::string_view piece);

  // Ends the stream: returns what was held back (an incomplete character becomes U+FFFD).
  std::string finish();

 private:
  // Length of the longest suffix of pending_ that is a proper prefix of a stop string.
  std::size_t stop_prefix_suffix() const;

  std::vector<std::string> stop_;  // stop strings, none empty
  std::string pending_;            // bytes received, not yet released
};

}  // namespace llmq
