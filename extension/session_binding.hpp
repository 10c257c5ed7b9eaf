// Session binding: a lease can be tied to the database session that took it,
// so it is free the moment that session ends.
//
// Each binding session holds, for its whole life, an exclusive session-level
// lock whose tag is made of its pid and its start time (pids are reused,
// pid + start time is not). "Is the holder's session alive?" is then a
// conditional lock probe: it answers correctly even when the holder was killed,
// because the lock manager drops a dead backend's locks. The tag is a
// LOCKTAG_USERLOCK in the default lock method, so pg_advisory_unlock_all() and
// DISCARD ALL in the holder's session cannot drop it by accident.
#pragma once

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

#include "lease_rules.hpp"

namespace singleton_lock {

struct SessionId {
    int32 pid;
    TimestampTz started;
};

SessionId own_session();

// Takes this session's binding lock (once) and remembers the lease so that
// its waiters are woken when this session exits.
void bind_lease_to_this_session(uint64 name_hash);

// True while the session that bound a lease still exists.
bool session_alive(int32 pid, TimestampTz started);

// Sets row.bound_session_alive for the lease rules, probing the lock table
// only when the rules need it.
void observe_bound_session(LeaseRow& row, int32 pid, TimestampTz started);

}  // namespace singleton_lock

namespace singleton_lock {
// The holder id used when singleton_acquire gets holder => NULL: stable for
// the session, with a random part (a holder id is a credential).
const char* default_holder();
}  // namespace singleton_lock
