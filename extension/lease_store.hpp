// The PostgreSQL side of a lease: lock, read and write its row in
// singleton_lock_leases (through SPI plans prepared once per backend), bind it
// to the session, send NOTIFY singleton_lock. Decisions come from
// lease_rules.hpp. Callers hold an SPI connection (SPI_connect) around these.
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
    int64 ttl_us;
    TimestampTz now;
    bool bind_session;
    // Read the row FOR UPDATE at once. Only when the call's transaction ends
    // right after it: a row lock kept after a refusal would block the
    // holder's heartbeats, so otherwise a plain read decides first.
    bool lock_first;
};

struct AcquireResult {
    bool acquired;
    int64 token;   // valid when acquired
    char* holder;  // current holder (ours or theirs); palloc'd in the caller's context
    TimestampTz expires_at;
    bool has_expiry;
    // Refused after the row was locked (another caller won a race): the lock
    // must not be kept across a wait (see acquire_attempt in functions.cpp).
    bool refused_while_locked;
};

// One atomic decision: take, renew or refuse.
AcquireResult acquire_once(const AcquireRequest& request);

// NULL-equivalent (has_result=false) when the lease is lost.
bool heartbeat(const LeaseKey& key, int64 token, const Interval* ttl_or_null, TimestampTz now,
               TimestampTz* new_expiry);
bool release(const LeaseKey& key, int64 token, TimestampTz now);
bool force_release(const LeaseKey& key, TimestampTz now);
// Returns normally only if token holds a live lease on the name; takes a
// FOR KEY SHARE row lock that makes any takeover wait for this transaction.
void assert_holds(const LeaseKey& key, int64 token, TimestampTz now);

Interval* micros_to_interval(int64 micros);

// The functions and the state table share the extension's schema; the first
// entry point called tells where that is.
void locate_schema(Oid calling_function);

}  // namespace singleton_lock
