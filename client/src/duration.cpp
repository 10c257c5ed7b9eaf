#include "singleton_lock/duration.hpp"

#include <cstdint>
#include <limits>

#include "singleton_lock/errors.hpp"

namespace singleton_lock {

namespace {

[[noreturn]] void bad(std::string_view text) {
    throw UsageError("invalid duration '" + std::string(text) +
                     "' (expected a number with a unit: 250ms, 10s, 2m, 1h)");
}

[[noreturn]] void too_long(std::string_view text) {
    throw UsageError("duration '" + std::string(text) + "' is too long (at most " +
                     format_duration(max_duration) + ")");
}

}  // namespace

Duration parse_duration(std::string_view text) {
    std::size_t i = 0;
    std::uint64_t whole = 0;
    std::uint64_t frac = 0, frac_scale = 1;
    bool digits = false, huge = false;
    const auto max_ms = static_cast<std::uint64_t>(max_duration.count());
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
        whole = whole * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (whole > max_ms) {  // too long in any unit; keep reading to report junk first
            huge = true;
            whole = max_ms;
        }
        digits = true;
    }
    if (i < text.size() && text[i] == '.') {
        ++i;
        bool frac_digits = false;
        for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
            if (frac_scale < 1000000000ULL) {
                frac = frac * 10 + static_cast<std::uint64_t>(text[i] - '0');
                frac_scale *= 10;
            }
            frac_digits = true;
        }
        if (!frac_digits) bad(text);
    }
    if (!digits) bad(text);
    const std::string_view unit = text.substr(i);
    std::uint64_t unit_ms = 0;
    if (unit == "ms")
        unit_ms = 1;
    else if (unit == "s")
        unit_ms = 1000;
    else if (unit == "m")
        unit_ms = 60 * 1000;
    else if (unit == "h")
        unit_ms = 3600 * 1000;
    else
        bad(text);
    // whole <= max_ms and unit_ms <= 3.6e6: no overflow in 64 bits.
    const std::uint64_t ms = whole * unit_ms + frac * unit_ms / frac_scale;
    if (huge || ms > max_ms) too_long(text);
    return Duration(static_cast<Duration::rep>(ms));
}

std::optional<Duration> parse_wait(std::string_view text) {
    if (text == "forever") return std::nullopt;
    return parse_duration(text);
}

std::string format_duration(Duration d) {
    const auto ms = d.count();
    if (ms != 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
    if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

std::string interval_literal(Duration d) { return std::to_string(d.count()) + " milliseconds"; }

}  // namespace singleton_lock
