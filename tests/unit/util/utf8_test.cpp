#include "util/utf8.h"

#include <string>

#include <gtest/gtest.h>

namespace llmq {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";
const std::string kEmoji = "\xF0\x9F\x98\x80";  // U+1F600

TEST(IsValidUtf8, AcceptsWellFormedText) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8(std::string("nul\0inside", 10)));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9"));          // U+00E9, 2 bytes
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));      // U+20AC, 3 bytes
  EXPECT_TRUE(is_valid_utf8(kEmoji));              // 4 bytes
  EXPECT_TRUE(is_valid_utf8("\xC2\x80"));          // U+0080, smallest 2-byte
  EXPECT_TRUE(is_valid_utf8("\xE0\xA0\x80"));      // U+0800, smallest 3-byte
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));      // U+E000, just above them
  EXPECT_TRUE(is_valid_utf8("\xF0\x90\x80\x80"));  // U+10000, smallest 4-byte
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
  EXPECT_TRUE(is_valid_utf8("a\xC3\xA9" + kEmoji + "z"));
}

TEST(IsValidUtf8, RejectsIllFormedText) {
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong 3-byte
  EXPECT_FALSE(is_valid_utf8("\xF0\x80\x80\xAF"));  // overlong 4-byte
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // U+D800, surrogate
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));      // U+DFFF, surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));  // lead byte beyond F4
  EXPECT_FALSE(is_valid_utf8("\x80"));              // stray continuation
  EXPECT_FALSE(is_valid_utf8("a\xBF" "b"));
  EXPECT_FALSE(is_valid_utf8("a\xFF" "b"));
  EXPECT_FALSE(is_valid_utf8("\xFE"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated at the end
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x98"));
  EXPECT_FALSE(is_valid_utf8("\xC3" "a"));          // lead byte without continuation
}

TEST(TakeCompleteUtf8, PassesCompleteTextThrough) {
  for (const std::string& s : {std::string(), std::string("hello"), std::string("\xC3\xA9"),
                              std::string("\xE2\x82\xAC"), kEmoji, "x" + kEmoji + "\xC3\xA9"}) {
    const Utf8Split split = take_complete_utf8(s);
    EXPECT_EQ(split.text, s);
    EXPECT_EQ(split.consumed, s.size());
  }
}

// A token boundary may fall anywhere inside a character: the first piece keeps the partial
// character back, and once the rest arrives the whole text comes out unchanged.
TEST(TakeCompleteUtf8, EmojiSplitAtEveryOffset) {
  const std::string full = "a" + kEmoji + "b";
  for (std::size_t cut = 0; cut <= full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const std::string first = full.substr(0, cut);
    const Utf8Split a = take_complete_utf8(first);
    const bool inside_emoji = cut >= 2 && cut <= 4;
    EXPECT_EQ(a.consumed, inside_emoji ? 1u : cut);
    EXPECT_LE(first.size() - a.consumed, 3u);
    EXPECT_EQ(a.text, first.substr(0, a.consumed));

    const std::string rest = first.substr(a.consumed) + full.substr(cut);
    const Utf8Split b = take_complete_utf8(rest);
    EXPECT_EQ(b.consumed, rest.size());
    EXPECT_EQ(a.text + b.text, full);
  }
}

TEST(TakeCompleteUtf8, KeepsEachIncompleteTail) {
  EXPECT_EQ(take_complete_utf8("ab\xC3").consumed, 2u);
  EXPECT_EQ(take_complete_utf8("ab\xE2\x82").consumed, 2u);
  EXPECT_EQ(take_complete_utf8("ab\xF0\x9F\x98").consumed, 2u);
  EXPECT_EQ(take_complete_utf8("\xE0").consumed, 0u);
  EXPECT_EQ(take_complete_utf8("\xF4\x8F").consumed, 0u);  // may still become U+10FFFF
}

TEST(TakeCompleteUtf8, ReplacesIllFormedSequences) {
  // One U+FFFD per maximal subpart (Unicode 3.9): a bad lead byte is its own subpart, and a
  // valid prefix cut short by a bad byte is one subpart.
  EXPECT_EQ(take_complete_utf8("\xC0\xAF").text, kFffd + kFffd);                  // overlong
  EXPECT_EQ(take_complete_utf8("\xED\xA0\x80").text, kFffd + kFffd + kFffd);      // surrogate
  EXPECT_EQ(take_complete_utf8("\xF4\x90\x80\x80").text, kFffd + kFffd + kFffd + kFffd);
  EXPECT_EQ(take_complete_utf8("a\x80" "b").text, "a" + kFffd + "b");             // stray
  EXPECT_EQ(take_complete_utf8("a\xFF" "b").text, "a" + kFffd + "b");
  EXPECT_EQ(take_complete_utf8("\xF0\x9F\x98" "x").text, kFffd + "x");            // cut short
  EXPECT_EQ(take_complete_utf8("\xE2\x82" + kEmoji).text, kFffd + kEmoji);
}

TEST(TakeCompleteUtf8, IllFormedTailIsConsumedNotKept) {
  // Only a tail that could still become a character is held back.
  for (const std::string& s : {std::string("a\xC0"), std::string("a\xF5"), std::string("a\x80"),
                              std::string("a\xED\xA0"), std::string("a\xF4\x90")}) {
    const Utf8Split split = take_complete_utf8(s);
    EXPECT_EQ(split.consumed, s.size()) << "input size " << s.size();
    EXPECT_EQ(split.text.substr(0, 1), "a");
    EXPECT_TRUE(is_valid_utf8(split.text));
  }
}

TEST(TakeCompleteUtf8, OutputIsAlwaysValid) {
  // Every 1- and 2-byte input: the emitted text is valid and at most 3 bytes are held back.
  for (int x = 0; x < 256; ++x) {
    for (int y = 0; y < 256; ++y) {
      const std::string s{static_cast<char>(x), static_cast<char>(y)};
      const Utf8Split split = take_complete_utf8(s);
      ASSERT_TRUE(is_valid_utf8(split.text)) << x << "," << y;
      ASSERT_LE(s.size() - split.consumed, 3u);
      if (is_valid_utf8(s)) {
        ASSERT_EQ(split.text, s);
      }
    }
  }
}

}  // namespace
}  // namespace llmq
