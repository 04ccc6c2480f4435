#include "http/sse.h"

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

}  // namespace
}  // namespace llmq::http
