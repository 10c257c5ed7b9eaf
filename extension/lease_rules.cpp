#include "lease_rules.hpp"

namespace singleton_lock {

LeaseState classify(const LeaseRow& row, Micros now) {
    if (!row.exists || row.released) return LeaseState::Free;
    if (row.session_bound && !row.bound_session_alive) return LeaseState::Orphaned;
    if (now >= row.expires_at) return LeaseState::Expired;
    return LeaseState::Held;
}

bool needs_liveness_check(const LeaseRow& row) {
    return row.exists && !row.released && row.session_bound;
}

AcquireDecision decide_acquire(const LeaseRow& row, std::string_view caller, Micros now) {
    switch (classify(row, now)) {
        case LeaseState::Free:
            // last_transition already says released/forced; a fresh row has none.
            return {AcquireOutcome::TakeNew, TenureEnd::None};
        case LeaseState::Orphaned:
            return {AcquireOutcome::TakeNew, TenureEnd::Orphaned};
        case LeaseState::Expired:
            return {AcquireOutcome::TakeNew, TenureEnd::Expired};
        case LeaseState::Held:
            if (row.holder == caller) return {AcquireOutcome::Renew, TenureEnd::None};
            return {AcquireOutcome::Refuse, TenureEnd::None};
    }
    return {AcquireOutcome::Refuse, TenureEnd::None};
}

namespace {
constexpr std::int64_t kSequenceMask = (std::int64_t{1} << kTokenSequenceBits) - 1;
constexpr std::uint32_t kMaxTimeline = (std::uint32_t{1} << (63 - kTokenSequenceBits)) - 1;
}  // namespace

std::uint32_t token_timeline(std::int64_t token) {
    return static_cast<std::uint32_t>(token >> kTokenSequenceBits);
}

std::optional<std::int64_t> next_token(std::int64_t previous_token, std::uint32_t timeline) {
    if (timeline == 0 || timeline > kMaxTimeline || previous_token < 0) return std::nullopt;
    std::int64_t sequence = (previous_token & kSequenceMask) + 1;
    if (sequence > kSequenceMask) return std::nullopt;
    std::int64_t candidate = (static_cast<std::int64_t>(timeline) << kTokenSequenceBits) | sequence;
    // A timeline can only grow; should a row ever come from a later timeline
    // than ours, still never go backwards.
    if (candidate <= previous_token) {
        if (previous_token == INT64_MAX) return std::nullopt;
        candidate = previous_token + 1;
    }
    return candidate;
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

const char* state_name(LeaseState state) {
    switch (state) {
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
    }
    return nullptr;
}

}  // namespace singleton_lock
