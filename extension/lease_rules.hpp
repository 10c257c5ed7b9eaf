// The lease state machine: pure decisions, no PostgreSQL header.
//
// Given the stored lease row, the server clock and the caller, decide what a
// call does. lease_store.cpp reads and writes the row; this file only decides,
// so every rule is unit-tested without a server (test/unit/lease_rules_test.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace singleton_lock {

// PostgreSQL's TimestampTz and interval resolution: microseconds.
using Micros = std::int64_t;

constexpr int kMaxNameChars = 255;
constexpr int kMaxHolderChars = 255;

// `state` column of singleton_leases; the first that applies wins.
enum class LeaseState { Free, Orphaned, Expired, Held };

// Why a tenure ended (`last_transition`).
enum class TenureEnd { None, Released, Expired, Orphaned, Forced };

struct LeaseRow {
    bool exists = false;
    bool released = true;     // released, force-released or never held
    std::string_view holder;  // last holder
    std::int64_t token = 0;   // last issued token, 0 if none
    Micros expires_at = 0;
    bool session_bound = false;  // holder_pid is set
    bool bound_session_alive = false;
};

LeaseState classify(const LeaseRow& row, Micros now);
inline bool is_live(const LeaseRow& row, Micros now) {
    return classify(row, now) == LeaseState::Held;
}

enum class AcquireOutcome { TakeNew, Renew, Refuse };

struct AcquireDecision {
    AcquireOutcome outcome;
    TenureEnd previous_end;  // for TakeNew: why the previous tenure ended
};

AcquireDecision decide_acquire(const LeaseRow& row, std::string_view caller, Micros now);

// Whether classify needs to know if the bound session is alive (the check
// costs a lock-table probe, so it is only made when it matters).
bool needs_liveness_check(const LeaseRow& row);

// Tokens: the WAL timeline in the high bits, a per-name sequence in the low
// bits. A promoted replica runs on a higher timeline, so its tokens exceed any
// the old primary issued, even ones it never replicated.
constexpr int kTokenSequenceBits = 40;
// nullopt when the per-name sequence or the timeline is exhausted.
std::optional<std::int64_t> next_token(std::int64_t previous_token, std::uint32_t timeline);
std::uint32_t token_timeline(std::int64_t token);

// now + ttl, or nullopt on overflow.
std::optional<Micros> expiry_after(Micros now, Micros ttl);

// An interval as a duration: days are 24 h and months 30 days (as
// EXTRACT(EPOCH ...) counts them), so a lease never depends on the time zone.
std::optional<Micros> interval_micros(std::int64_t time_us, std::int32_t days, std::int32_t months);

const char* state_name(LeaseState state);
const char* tenure_end_name(TenureEnd end);  // nullptr for None

}  // namespace singleton_lock
