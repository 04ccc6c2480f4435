#include "util/keep_alive.h"

#include <cmath>
#include <cstdint>

namespace llmq {
namespace {

// Go's time.Duration is int64 nanoseconds: nothing longer parses there, nor here.
constexpr double kMaxNanoseconds = 9223372036854775807.0;

// Nanoseconds per unit of a Go duration, or 0 for an unknown unit.
double unit_nanoseconds(std::string_view unit) {
  if (unit == "ns") return 1;
  if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") return 1e3;  // µs (micro sign, mu)
  if (unit == "ms") return 1e6;
  if (unit == "s") return 1e9;
  if (unit == "m") return 60e9;
  if (unit == "h") return 3600e9;
  return 0;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A decimal number at the front of `text` ("12", "1.5", ".5", "5."), consumed; nullopt when
// there is no digit. Read digit by digit: no locale, and Go's ".5" and "5." as they are.
std::optional<double> take_number(std::string_view& text) {
  std::size_t i = 0;
  std::size_t digits = 0;
  double value = 0;
  for (; i < text.size() && is_digit(text[i]); ++i, ++digits) value = value * 10 + (text[i] - '0');
  if (i < text.size() && text[i] == '.') {
    double scale = 1;
    for (++i; i < text.size() && is_digit(text[i]); ++i, ++digits) {
      scale /= 10;
      value += (text[i] - '0') * scale;
    }
  }
  if (digits == 0) return std::nullopt;
  text.remove_prefix(i);
  return value;
}

std::optional<std::chrono::milliseconds> from_nanoseconds(double ns) {
  if (!std::isfinite(ns) || std::fabs(ns) > kMaxNanoseconds) return std::nullopt;
  if (ns < 0) return kKeepLoaded;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(ns / 1e6)));
}

// Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?unit)+, or "0".
std::optional<double> go_duration_nanoseconds(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text == "0") return 0.0;
  if (text.empty()) return std::nullopt;
  double total = 0;
  while (!text.empty()) {
    const std::optional<double> number = take_number(text);
    if (!number) return std::nullopt;
    std::size_t unit_end = 0;
    while (unit_end < text.size() && !is_digit(text[unit_end]) && text[unit_end] != '.') ++unit_end;
    const double unit = unit_nanoseconds(text.substr(0, unit_end));
    if (unit == 0) return std::nullopt;  // no unit, or an unknown one
    total += *number * unit;
    text.remove_prefix(unit_end);
  }
  return negative ? -total : total;
}

// A plain number of seconds, as Ollama's OLLAMA_KEEP_ALIVE takes it: [-+]?digits[.digits].
std::optional<double> seconds_nanoseconds(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  const std::optional<double> number = take_number(text);
  if (!number || !text.empty()) return std::nullopt;
  return (negative ? -*number : *number) * 1e9;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_keep_alive(std::string_view text) {
  if (const std::optional<double> ns = seconds_nanoseconds(text)) return from_nanoseconds(*ns);
  if (const std::optional<double> ns = go_duration_nanoseconds(text)) return from_nanoseconds(*ns);
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> keep_alive_from_seconds(double seconds) {
  return from_nanoseconds(seconds * 1e9);
}

std::string describe_keep_alive(std::chrono::milliseconds keep_alive) {
  const std::int64_t ms = keep_alive.count();
  if (ms < 0) return "forever";
  if (ms == 0) return "0 (unload when idle)";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace llmq
