#include "http/sse.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace llmq::http {
namespace {

TEST(SseFraming, EventHasIdNameDataAndBlankLine) {
  EXPECT_EQ(sse_event(7, "token", R"({"i":0,"text":"Hi"})"),
            "id: 7\nevent: token\ndata: {\"i\":0,\"text\":\"Hi\"}\n\n");
}

TEST(SseFraming, CommentStartsWithColon) { EXPECT_EQ(sse_comment("ping"), ": ping\n\n"); }

TEST(SseFraming, JsonWithEscapedNewlineStaysOneDataLine) {
  // A newline inside a token is escaped by JSON, so the frame keeps exactly one data line.
  const std::string frame = sse_event(0, "token", R"({"text":"a\nb"})");
  EXPECT_EQ(frame.find("data: "), frame.rfind("data: "));
  EXPECT_EQ(frame.substr(frame.size() - 2), "\n\n");
  EXPECT_EQ(std::count(frame.begin(), frame.end(), '\n'), 4);
}

// Regressions from fuzz_sse: raw line breaks used to end the data line early, so the rest of the
// data was read as fields (an "event:" or "id:" of the data's choosing) or dropped.
TEST(SseFraming, EachLineOfDataIsItsOwnDataLine) {
  EXPECT_EQ(sse_event(1, "token", "a\nevent: x\r\nb\rc"),
            "id: 1\nevent: token\ndata: a\ndata: event: x\ndata: b\ndata: c\n\n");
}

TEST(SseFraming, TrailingLineBreakInDataIsAnEmptyDataLine) {
  EXPECT_EQ(sse_event(1, "token", "a\r\n"), "id: 1\nevent: token\ndata: a\ndata: \n\n");
  EXPECT_EQ(sse_event(1, "token", ""), "id: 1\nevent: token\ndata: \n\n");
}

TEST(SseFraming, LineBreaksInEventNameAreDropped) {
  EXPECT_EQ(sse_event(2, "to\r\nken\n", "{}"), "id: 2\nevent: token\ndata: {}\n\n");
}

TEST(SseFraming, EachLineOfCommentStaysAComment) {
  EXPECT_EQ(sse_comment("a\ndata: injected"), ": a\n: data: injected\n\n");
}

}  // namespace
}  // namespace llmq::http
