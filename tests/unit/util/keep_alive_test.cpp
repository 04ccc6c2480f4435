// Tests of the keep_alive parser: Go's duration syntax (what Ollama's keep_alive takes) and a
// plain number of seconds.
#include "util/keep_alive.h"

#include <gtest/gtest.h>

namespace llmq {
namespace {

using std::chrono::milliseconds;

std::optional<std::int64_t> ms(std::string_view text) {
  const auto parsed = parse_keep_alive(text);
  if (!parsed) return std::nullopt;
  return parsed->count();
}

TEST(KeepAlive, GoDurations) {
  EXPECT_EQ(ms("5m"), 300000);
  EXPECT_EQ(ms("30s"), 30000);
  EXPECT_EQ(ms("1h"), 3600000);
  EXPECT_EQ(ms("250ms"), 250);
  EXPECT_EQ(ms("1h2m3s4ms"), 3723004);
  EXPECT_EQ(ms("1.5h"), 5400000);
  EXPECT_EQ(ms(".5s"), 500);
  EXPECT_EQ(ms("5.s"), 5000);
  EXPECT_EQ(ms("+5m"), 300000);
  EXPECT_EQ(ms("2000000ns"), 2);
  EXPECT_EQ(ms("3000us"), 3);
  EXPECT_EQ(ms("3000\xC2\xB5s"), 3);  // µs, the micro sign
  EXPECT_EQ(ms("3000\xCE\xBCs"), 3);  // μs, the Greek mu
}

TEST(KeepAlive, ZeroUnloadsAndPositiveNeverRoundsToZero) {
  EXPECT_EQ(ms("0"), 0);
  EXPECT_EQ(ms("0s"), 0);
  EXPECT_EQ(ms("-0"), 0);
  EXPECT_EQ(ms("1ns"), 1);
  EXPECT_EQ(ms("1500us"), 2);
}

TEST(KeepAlive, NegativeMeansKeepLoaded) {
  EXPECT_EQ(parse_keep_alive("-1"), kKeepLoaded);
  EXPECT_EQ(parse_keep_alive("-1m"), kKeepLoaded);
  EXPECT_EQ(parse_keep_alive("-5h30m"), kKeepLoaded);
  EXPECT_EQ(keep_alive_from_seconds(-0.5), kKeepLoaded);
}

TEST(KeepAlive, PlainNumbersAreSeconds) {
  EXPECT_EQ(ms("300"), 300000);
  EXPECT_EQ(ms("2.5"), 2500);
  EXPECT_EQ(keep_alive_from_seconds(30), milliseconds(30000));
  EXPECT_EQ(keep_alive_from_seconds(0.0001), milliseconds(1));
  EXPECT_EQ(keep_alive_from_seconds(0), milliseconds(0));
}

TEST(KeepAlive, RefusesWhatIsNotADuration) {
  for (const char* bad : {"", "-", "+", "m", "5x", "5m5", "5 m", " 5m", "5m ", "1e3s", "1,5s",
                          "forever", "inf", "nan", "..5s", "5..s", "0x10s", "5M", "1d"}) {
    EXPECT_EQ(parse_keep_alive(bad), std::nullopt) << '"' << bad << '"';
  }
}

TEST(KeepAlive, RefusesWhatGoCannotHold) {
  EXPECT_TRUE(parse_keep_alive("2562047h").has_value());  // just under 2^63 ns
  EXPECT_EQ(parse_keep_alive("2562048h"), std::nullopt);
  EXPECT_EQ(parse_keep_alive("-2562048h"), std::nullopt);
  EXPECT_EQ(keep_alive_from_seconds(1e300), std::nullopt);
  EXPECT_EQ(keep_alive_from_seconds(std::numeric_limits<double>::infinity()), std::nullopt);
}

TEST(KeepAlive, DescribedForTheLog) {
  EXPECT_EQ(describe_keep_alive(milliseconds(300000)), "5m");
  EXPECT_EQ(describe_keep_alive(milliseconds(7200000)), "2h");
  EXPECT_EQ(describe_keep_alive(milliseconds(30000)), "30s");
  EXPECT_EQ(describe_keep_alive(milliseconds(1500)), "1500ms");
  EXPECT_EQ(describe_keep_alive(milliseconds(0)), "0 (unload when idle)");
  EXPECT_EQ(describe_keep_alive(kKeepLoaded), "forever");
}

}  // namespace
}  // namespace llmq
