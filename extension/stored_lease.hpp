// A lease row as the functions read it (plans.hpp), and what every operation
// on it shares: the rules' view of it (with what became of its bound
// sessions), announcing changes, writing a new tenure.
#pragma once

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

#include "lease_rules.hpp"
#include "lease_store.hpp"
#include "plans.hpp"
#include "session_binding.hpp"

namespace singleton_lock {

struct StoredLease {
    bool exists;
    bool released;
    bool paused;
    char* holder;
    Oid role;
    int64 token;
    int32 priority;
    bool has_expiry;
    TimestampTz expires_at;
    int64 ttl_us;
    uint64 binding_key;  // 0 when unbound
    StoredBinding binding;
};

// Reads a lease-loading plan's first row (exists = false when none).
StoredLease load(const LeaseKey& key, PlanId plan);
// Loads the row only if `token` of `role` is its current tenure, locked
// (kLoadOwnForKeyShare or kLoadOwnForUpdate).
StoredLease load_own(const LeaseKey& key, int64 token, Oid role, PlanId plan);

// The row as the lease rules see it.
LeaseRow rule_row(const StoredLease& stored);
LeaseState state_of(const StoredLease& stored, TimestampTz now);

// A holder id is a credential: a caller of another role sees which role
// holds the lease, never the id.
char* holder_as_seen_by(const StoredLease& row, Oid caller);

// Who a new tenure is for: the caller, or a waiter it is handed to.
struct NewTenure {
    const char* holder;
    Oid role;
    int64 ttl_us;
    int32 priority;
    int32 pid;                 // 0: unbound
    TimestampTz session_start;
    uint64 binding_key;        // 0: unbound
};
// Writes it with a new token (durably) and tells listeners; returns the token.
int64 write_new_tenure(const LeaseKey& key, int64 previous_token, const NewTenure& tenure,
                       TimestampTz now, TimestampTz expires_at, TenureEnd previous_end);

TimestampTz expiry_or_error(TimestampTz now, int64 ttl_us);
void notify_change(const LeaseKey& key);
// The lease changed hands or became free: tell listeners, and wake waiters
// and watchers once this commits.
void announce_change(const LeaseKey& key);

}  // namespace singleton_lock
