// Durations as written on the command line: a number with a unit.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace singleton_lock {

using Duration = std::chrono::milliseconds;

// The longest duration accepted anywhere (10 years): every deadline the client
// computes from one stays far inside the monotonic clock's range.
constexpr Duration max_duration = std::chrono::hours(24 * 3650);

// "250ms", "10s", "2m", "1h"; a decimal fraction is allowed ("1.5s").
// Throws UsageError on anything else (no unit, negative, junk, above max_duration).
Duration parse_duration(std::string_view text);

// Like parse_duration, but also "forever" (returned as std::nullopt).
std::optional<Duration> parse_wait(std::string_view text);

// Human readable, the shortest exact form: "250ms", "10s", "2m", "1h", "1500ms".
std::string format_duration(Duration d);

// PostgreSQL interval literal, e.g. "10000 milliseconds".
std::string interval_literal(Duration d);

}  // namespace singleton_lock
