#include "lease_rules.hpp"

#include <algorithm>

namespace singleton_lock {

namespace {

bool past(Micros now, Micros deadline) { return now >= deadline; }

}  // namespace

// A lease whose sessions all ended in a server restart is its holder's until
// the later of its stored expiry and (start of this server run + ttl).
Micros lease_deadline(const LeaseRow& row) {
    if (row.binding != Binding::EndedByRestart) return row.expires_at;
    auto after_restart = expiry_after(row.server_epoch, row.ttl);
    return std::max(row.expires_at, after_restart.value_or(row.expires_at));
}

LeaseState classify(const LeaseRow& row, Micros now) {
    if (row.exists && row.paused) return LeaseState::Paused;
    if (!row.exists || row.released) return LeaseState::Free;
    switch (row.binding) {
        case Binding::Ended:
        case Binding::EndedByFailover:
            return LeaseState::Orphaned;
        case Binding::EndedByRestart:
        case Binding::Live:
        case Binding::Unbound:
            break;
    }
    return past(now, lease_deadline(row)) ? LeaseState::Expired : LeaseState::Held;
}

bool needs_binding_check(const LeaseRow& row) {
    return row.exists && !row.released && !row.paused && row.binding != Binding::Unbound;
}

AcquireDecision decide_acquire(const LeaseRow& row, const Caller& caller, Micros now) {
    switch (classify(row, now)) {
        case LeaseState::Paused:
            return {AcquireOutcome::Refuse, TenureEnd::None};
        case LeaseState::Free:
            // last_transition already says released/forced; a fresh row has none.
            return {AcquireOutcome::TakeNew, TenureEnd::None};
        case LeaseState::Orphaned:
            return {AcquireOutcome::TakeNew, TenureEnd::Orphaned};
        case LeaseState::Expired:
            return {AcquireOutcome::TakeNew, TenureEnd::Expired};
        case LeaseState::Held:
            if (row.holder == caller.holder && row.role == caller.role)
                return {AcquireOutcome::Renew, TenureEnd::None};
            return {AcquireOutcome::Refuse, TenureEnd::None};
    }
    return {AcquireOutcome::Refuse, TenureEnd::None};
}

bool token_authorizes(const LeaseRow& row, std::int64_t token, std::uint32_t role, Micros now) {
    return row.exists && row.token == token && row.role == role &&
           classify(row, now) == LeaseState::Held;
}

namespace {
constexpr std::int64_t kFloorMask = (std::int64_t{1} << kTokenTimelineShift) - 1;
constexpr std::uint32_t kMaxTimeline = (std::uint32_t{1} << (63 - kTokenTimelineShift)) - 1;
}  // namespace

std::uint32_t token_timeline(std::int64_t token) {
    return static_cast<std::uint32_t>(token >> kTokenTimelineShift);
}

std::optional<std::int64_t> next_token(std::int64_t previous_token, std::uint32_t timeline,
                                       std::uint64_t wal_insert_position) {
    if (timeline == 0 || timeline > kMaxTimeline || previous_token < 0) return std::nullopt;
    if (previous_token == INT64_MAX) return std::nullopt;
    const std::uint64_t units = wal_insert_position / kWalFloorUnit;
    const std::int64_t floor =
        units > static_cast<std::uint64_t>(kFloorMask) ? kFloorMask : static_cast<std::int64_t>(units);
    const std::int64_t candidate =
        (static_cast<std::int64_t>(timeline) << kTokenTimelineShift) | floor;
    return std::max(previous_token + 1, candidate);
}

std::optional<Micros> expiry_after(Micros now, Micros ttl) {
    Micros result;
    if (__builtin_add_overflow(now, ttl, &result)) return std::nullopt;
    return result;
}

std::optional<Micros> interval_micros(std::int64_t time_us, std::int32_t days,
                                      std::int32_t months) {
    constexpr std::int64_t kDayUs = 86400LL * 1000000LL;
    std::int64_t total_days = static_cast<std::int64_t>(months) * 30 + days;
    std::int64_t day_part;
    std::int64_t result;
    if (__builtin_mul_overflow(total_days, kDayUs, &day_part)) return std::nullopt;
    if (__builtin_add_overflow(day_part, time_us, &result)) return std::nullopt;
    return result;
}

namespace {

// Decodes one UTF-8 sequence (already validated by PostgreSQL); returns its length.
int utf8_decode(std::string_view s, std::size_t i, char32_t* cp) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (i + len > s.size()) len = 1;
    char32_t value = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len; k++) value = (value << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    *cp = value;
    return len;
}

bool is_control(char32_t cp) { return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0); }

bool is_white_space(char32_t cp) {
    switch (cp) {
        case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
        case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
            return true;
        default:
            return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x2000 && cp <= 0x200B);
    }
}

}  // namespace

LabelCheck check_label(std::string_view bytes, bool utf8, int max_chars) {
    int chars = 0;
    bool only_space = true;
    bool control = false;
    for (std::size_t i = 0; i < bytes.size();) {
        char32_t cp = static_cast<unsigned char>(bytes[i]);
        int len = 1;
        if (utf8) len = utf8_decode(bytes, i, &cp);
        else if (cp >= 0x80) cp = 0xFFFD;  // some non-ASCII character of another encoding
        i += len;
        chars++;
        control = control || is_control(cp);
        only_space = only_space && is_white_space(cp);
    }
    if (chars == 0) return {LabelProblem::Empty, 0};
    if (chars > max_chars) return {LabelProblem::TooLong, chars};
    if (control) return {LabelProblem::ControlCharacter, chars};
    if (only_space) return {LabelProblem::OnlyWhiteSpace, chars};
    return {LabelProblem::None, chars};
}

const char* state_name(LeaseState state) {
    switch (state) {
        case LeaseState::Paused:
            return "paused";
        case LeaseState::Free:
            return "free";
        case LeaseState::Orphaned:
            return "orphaned";
        case LeaseState::Expired:
            return "expired";
        case LeaseState::Held:
            return "held";
    }
    return "free";
}

const char* tenure_end_name(TenureEnd end) {
    switch (end) {
        case TenureEnd::None:
            return nullptr;
        case TenureEnd::Released:
            return "released";
        case TenureEnd::Expired:
            return "expired";
        case TenureEnd::Orphaned:
            return "orphaned";
        case TenureEnd::Forced:
            return "forced";
        case TenureEnd::Paused:
            return "paused";
    }
    return nullptr;
}

}  // namespace singleton_lock
