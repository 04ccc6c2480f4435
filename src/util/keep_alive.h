// Ollama's `keep_alive`: how long a model stays loaded after its last job. The same rules for a
// request's field and for `--keep-alive`: a Go duration ("5m", "1h30m", "250ms", "0", "-1m") or a
// number of seconds ("300", "2.5"; in JSON a number). 0 unloads the model as soon as it is idle;
// any negative value keeps it loaded.
//
// Pure functions, thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace llmq {

// Negative durations all come out as this one: "keep loaded".
inline constexpr std::chrono::milliseconds kKeepLoaded{-1};

// The duration `text` names, or nullopt when it is neither a Go duration nor a number of seconds
// (or is beyond Go's range, about 292 years). Positive values round up to whole milliseconds (a
// positive keep_alive never becomes 0); negative ones are kKeepLoaded.
std::optional<std::chrono::milliseconds> parse_keep_alive(std::string_view text);

// The same for a number of seconds (a JSON number); nullopt when not finite or out of range.
std::optional<std::chrono::milliseconds> keep_alive_from_seconds(double seconds);

// For logs, in Go's units: "5m", "1500ms", "0 (unload when idle)" or "forever".
std::string describe_keep_alive(std::chrono::milliseconds keep_alive);

}  // namespace llmq
