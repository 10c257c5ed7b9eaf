// The PostgreSQL side of a lease: lock, read and write its row in
// singleton_lock_leases (plans.hpp), bind it to sessions
// (session_binding.hpp), send NOTIFY singleton_lock, wake waiters. Decisions
// come from lease_rules.hpp. Callers run these as the extension owner inside
// one SPI connection (call_context.hpp).
#pragma once

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/timestamp.h"
}

namespace singleton_lock {

struct LeaseKey {
    text* name;            // as passed to SQL
    const char* name_str;  // NUL-terminated copy
    int name_len;          // bytes
    uint64 name_hash;
};

struct AcquireRequest {
    LeaseKey key;
    const char* holder;  // already defaulted
    Oid role;            // the calling role
    int64 ttl_us;
    int32 priority;
    TimestampTz now;
    TimestampTz since;   // when the caller began asking (ties among waiters)
    bool bind_session;
    // A waiter's binding key, already held by this session: a release may
    // hand the lease over with it; a take uses it. 0: none.
    uint64 prebound_key;
    // Read the row FOR UPDATE at once. Only when the call's transaction ends
    // right after it: a row lock kept after a refusal would block the
    // holder's heartbeats, so otherwise a plain read decides first.
    bool lock_first;
};

struct AcquireResult {
    bool acquired;
    int64 token;   // valid when acquired
    char* holder;  // ours, or theirs as the caller may see it; in the caller's context
    TimestampTz expires_at;
    bool has_expiry;
    // Refused after the row was locked (another caller won a race): the lock
    // must not be kept across a wait (see attempt() in functions.cpp).
    bool refused_while_locked;
    bool paused;              // refused because elections are paused
    bool yielded;             // refused in favour of a better waiter
    int32 holder_priority;    // of the current holder, when refused
};

// One atomic decision: take, renew or refuse.
AcquireResult acquire_once(const AcquireRequest& request);

// Token-authorized calls: `role` must be the role that acquired the lease.
bool heartbeat(const LeaseKey& key, int64 token, Oid role, const Interval* ttl_or_null,
               TimestampTz now, TimestampTz* new_expiry);
bool release(const LeaseKey& key, int64 token, Oid role, TimestampTz now);
bool bind_to_lease(const LeaseKey& key, int64 token, Oid role, TimestampTz now);
// Returns normally only if token holds a live lease on the name; takes a
// FOR KEY SHARE row lock that makes any takeover wait for this transaction.
void assert_holds(const LeaseKey& key, int64 token, Oid role, TimestampTz now);

bool force_release(const LeaseKey& key, TimestampTz now);
// Administrators (1.1): pausing ends the current tenure; no acquire succeeds
// until resume, which hands the lease to the best waiter at once.
bool pause_lease(const LeaseKey& key, const char* reason, Oid role, TimestampTz now);
bool resume_lease(const LeaseKey& key, TimestampTz now);

// singleton_watch (1.1): what a holder should know now.
enum class WatchOutcome { Held, StepDown, Lost };
WatchOutcome watch_once(const LeaseKey& key, int64 token, Oid role, TimestampTz now,
                        TimestampTz* deadline);

Interval* micros_to_interval(int64 micros);

}  // namespace singleton_lock
