// A standby waits in slices: one waiting singleton_acquire after another on
// its session (the clients' slices last seconds, so that a dead server or
// network path is noticed between them). Among waiters of equal priority the
// longest waiting gets the lease. So that this means the standby that has
// waited longest, not the one whose current slice began first, a session's
// next waiting call for the same lease, holder, role and priority keeps the
// start of its last one when it begins within kRanOutKeptUs of that one running
// out — on the same session, or on another one of the same holder id (behind a
// transaction pooler each slice may run in a different session; a client may
// reconnect between slices): see waiter_registry.hpp.
#pragma once

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

#include "waiter_registry.hpp"

namespace singleton_lock {

struct WaitIdentity {
    uint64 name_hash;
    const char* holder;
    Oid role;
    int32 priority;
};

// When this waiting call's wait counts from: `now`, or the start of the
// session's last waiting call when this one continues it.
TimestampTz waiting_since(const WaitIdentity& who, TimestampTz now);
// A waiting call that began waiting at `since` ran out without the lease.
void note_wait_ran_out(const WaitIdentity& who, TimestampTz since);

}  // namespace singleton_lock
