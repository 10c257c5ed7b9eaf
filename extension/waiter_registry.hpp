// Who is waiting for which lease, with what priority, in shared memory.
//
// A waiting acquire registers itself here for the length of its wait: its
// holder id, role, ttl, priority, when it began waiting and — for a session-
// bound waiter — a binding key its session already holds. That is what lets
//   - a release (or resume) hand the lease to the best waiter inside its own
//     transaction: it writes the waiter's tenure with the waiter's binding key,
//     so the waiter's session is bound to it the moment that commits, and the
//     waiter returns without a commit of its own;
//   - a waiter of higher priority than the holder's ask the holder to step
//     down (the holder's singleton_watch wakes up);
//   - a waiter of lower priority leave a free lease to a better one.
//
// The registry is a small fixed array allocated in the main shared memory
// segment on first use (its size is known without shared_preload_libraries;
// when preloaded it is reserved at startup). When it is full, a waiter still
// waits, but is not offered a handoff and its priority is not seen.
#pragma once

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
#include "storage/proc.h"
}

#include "lease_rules.hpp"

namespace singleton_lock {

constexpr int kRegistrySlots = 64;
constexpr int kMaxHolderBytes = kMaxHolderChars * 4 + 1;

struct Waiter {
    uint64 name_hash;
    Oid database;
    Oid role;
    int32 priority;
    TimestampTz since;      // when it began waiting (ties: longest waiting first)
    int64 ttl_us;
    uint64 binding_key;     // held by its session; 0: an unbound waiter (no handoff)
    TimestampTz session_start;
    int32 pid;
    PGPROC* proc;
    char holder[kMaxHolderBytes];
};

// Registers this backend as a waiter (one registration per backend); false
// when the registry is full. Undone by unregister_this_waiter(), and by any
// abort or exit of this backend.
bool register_this_waiter(const Waiter& me);
void unregister_this_waiter();

// The best waiter for a lease (highest priority, then longest waiting) other
// than `except_pid` (-1: none), optionally only among session-bound ones.
// False if none.
bool best_waiter(uint64 name_hash, bool bound_only, int32 except_pid, Waiter* out);

// Whether a live waiter for the lease outranks (priority, then since) the given one.
bool outranked(uint64 name_hash, int32 priority, TimestampTz since, int32 except_pid);

// The highest priority among the lease's waiters; false if none.
bool highest_waiting_priority(uint64 name_hash, int32* priority);

// A standby waits in slices (wait_slices.hpp); behind a transaction pooler, or
// after a reconnection, its next slice may run in another session. So a
// waiting call that ran out without the lease is noted here (in a free slot,
// never displacing a waiter or another's recent note) for kRanOutKeptUs, and
// the next waiting call of the same lease, database, role, priority and holder
// id takes its start (the note is consumed). A holder id is a credential: only
// its own client can continue its wait.
constexpr int64 kRanOutKeptUs = 1000 * 1000;
void note_ran_out(const Waiter& who, TimestampTz now);  // who.since: when it began waiting
bool take_ran_out_since(const Waiter& who, TimestampTz now, TimestampTz* since);

// Called once from _PG_init: reserves the space when preloaded, registers cleanup.
void install_waiter_registry();

}  // namespace singleton_lock
