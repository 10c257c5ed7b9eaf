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
enum class LeaseState { Paused, Free, Orphaned, Expired, Held };

// Why a tenure ended (`last_transition`).
enum class TenureEnd { None, Released, Expired, Orphaned, Forced, Paused };

// What became of the sessions a lease is bound to.
enum class Binding {
    Unbound,      // never bound (singleton_lock.bind_session = off): ttl alone
    Live,         // at least one bound session still exists
    Ended,        // every bound session has ended (client gone, terminated)
    EndedByRestart,  // they ended because the server restarted (or crash-restarted)
    EndedByFailover, // they were sessions of a former primary (older timeline)
};

struct LeaseRow {
    bool exists = false;
    bool paused = false;       // an administrator paused elections (1.1)
    bool released = true;      // released, force-released, paused or never held
    std::string_view holder;   // last holder
    std::uint32_t role = 0;    // role that acquired (authority is scoped to it)
    std::int64_t token = 0;    // last issued token, 0 if none
    std::int32_t priority = 0; // of the current tenure's holder
    Micros expires_at = 0;
    Micros ttl = 0;
    Binding binding = Binding::Unbound;
    // For Binding::EndedByRestart: when this server run began. The holder lost
    // its connection no later than that, and its client stops acting by
    // (last heartbeat sent + ttl), so the lease stays its own until
    // server_epoch + ttl (or its stored expiry, if later).
    Micros server_epoch = 0;
};

struct Caller {
    std::string_view holder;
    std::uint32_t role = 0;
};

LeaseState classify(const LeaseRow& row, Micros now);

// When a held lease stops being held if nobody renews it: its expiry, or for
// Binding::EndedByRestart the later of that and server_epoch + ttl.
Micros lease_deadline(const LeaseRow& row);

// Whether classify needs to know what became of the bound sessions (that
// costs lock-table probes, so it is only asked when it matters).
bool needs_binding_check(const LeaseRow& row);

enum class AcquireOutcome { TakeNew, Renew, Refuse };

struct AcquireDecision {
    AcquireOutcome outcome;
    TenureEnd previous_end;  // for TakeNew: why the previous tenure ended
};

// The same holder id of the same role renews (idempotent retry); a holder id
// presented by another role is someone else.
AcquireDecision decide_acquire(const LeaseRow& row, const Caller& caller, Micros now);

// Whether a token-authorized call (heartbeat, release, assert, bind) by
// `role` with `token` acts on this lease: the current token of a live lease,
// presented by the role that acquired it.
bool token_authorizes(const LeaseRow& row, std::int64_t token, std::uint32_t role, Micros now);

// Fencing tokens. Strictly increasing per name, never reissued:
//   token = max(previous + 1, (timeline << kTokenTimelineShift) | wal_floor)
// where wal_floor is the server's WAL insert position / 64. The timeline in
// the high bits makes a promoted replica's tokens exceed any its old primary
// issued, even ones it never replicated. The WAL position grows by more than
// 64 bytes with every acquisition (its row update and commit record), so a
// token never exceeds the floor of a later acquisition: tokens keep growing
// even when the lease table was dropped and created again (DROP/CREATE
// EXTENSION) or a row was deleted. The floor saturates after 2^43 * 64 bytes
// (512 TiB) of WAL; from then on only `previous + 1` protects (per name).
constexpr int kTokenTimelineShift = 43;
constexpr std::uint64_t kWalFloorUnit = 64;
// nullopt when tokens are exhausted (INT64_MAX reached) or the timeline does
// not fit.
std::optional<std::int64_t> next_token(std::int64_t previous_token, std::uint32_t timeline,
                                       std::uint64_t wal_insert_position);
std::uint32_t token_timeline(std::int64_t token);

// now + ttl, or nullopt on overflow.
std::optional<Micros> expiry_after(Micros now, Micros ttl);

// An interval as a duration: days are 24 h and months 30 days (as
// EXTRACT(EPOCH ...) counts them), so a lease never depends on the time zone.
std::optional<Micros> interval_micros(std::int64_t time_us, std::int32_t days, std::int32_t months);

// Lease names and holder ids: 1..255 characters, not only white space, no
// control characters. `utf8` says the bytes are UTF-8 (the database
// encoding); otherwise only ASCII white space and controls are recognized.
enum class LabelProblem { None, Empty, TooLong, OnlyWhiteSpace, ControlCharacter };
struct LabelCheck {
    LabelProblem problem;
    int characters;
};
LabelCheck check_label(std::string_view bytes, bool utf8, int max_chars);

const char* state_name(LeaseState state);
const char* tenure_end_name(TenureEnd end);  // nullptr for None

}  // namespace singleton_lock
