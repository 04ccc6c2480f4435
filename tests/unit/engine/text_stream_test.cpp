#include "engine/text_stream.h"

#include <gtest/gtest.h>

namespace llmq {
namespace {

TEST(TextStream, PassesPlainTextThrough) {
  TextStream s;
  EXPECT_EQ(s.push("Hel").text, "Hel");
  EXPECT_EQ(s.push("lo").text, "lo");
  EXPECT_EQ(s.finish(), "");
}

TEST(TextStream, HoldsASplitCharacterUntilItIsWhole) {
  TextStream s;
  const std::string euro = "\xE2\x82\xAC";  // €
  EXPECT_EQ(s.push("a" + euro.substr(0, 1)).text, "a");
  EXPECT_EQ(s.push(euro.substr(1, 1)).text, "");
  EXPECT_EQ(s.push(euro.substr(2)).text, euro);
}

TEST(TextStream, ACutOffCharacterAtTheEndBecomesReplacementChar) {
  TextStream s;
  EXPECT_EQ(s.push("x\xF0\x9F").text, "x");
  EXPECT_EQ(s.finish(), "\xEF\xBF\xBD");
}

TEST(TextStream, StopStringEndsTheTextBeforeIt) {
  TextStream s({"END"});
  const auto out = s.push("hello END world");
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(out.text, "hello ");
}

TEST(TextStream, StopStringSpanningPiecesIsHeldBackThenCut) {
  TextStream s({"END"});
  auto out = s.push("abc E");
  EXPECT_EQ(out.text, "abc ");  // "E" may start the stop string
  EXPECT_FALSE(out.stopped);
  out = s.push("N");
  EXPECT_EQ(out.text, "");
  out = s.push("D tail");
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(out.text, "");
}

TEST(TextStream, HeldBackPrefixIsReleasedWhenItDoesNotMatch) {
  TextStream s({"END"});
  EXPECT_EQ(s.push("E").text, "");
  EXPECT_EQ(s.push("NX").text, "ENX");
}

TEST(TextStream, HeldBackPrefixIsReleasedAtFinish) {
  TextStream s({"END"});
  EXPECT_EQ(s.push("xE").text, "x");
  EXPECT_EQ(s.finish(), "E");
}

TEST(TextStream, EarliestOfSeveralStopStringsWins) {
  TextStream s({"zz", "b"});
  const auto out = s.push("aabzz");
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(out.text, "aa");
}

}  // namespace
}  // namespace llmq
