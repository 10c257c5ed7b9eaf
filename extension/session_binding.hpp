// Session binding: a lease can be tied to the database sessions of its
// holder, so that it is free the moment the last of them ends.
//
// Every tenure (a name and its token) has a binding key; each session bound
// to the tenure holds a share lock on the key's tag at session level, for its
// whole life. "Does a bound session still exist?" is a conditional exclusive
// lock probe: it answers correctly even when the holder was killed, because
// the lock manager drops a dead backend's locks. Several sessions may bind one
// tenure (singleton_bind, or a renewing acquire from another session): the
// lease is orphaned only when all of them have ended.
//
// When the bound sessions are gone, the row tells why: sessions of a former
// primary (bound on an older timeline) mean a failover — orphaned at once;
// sessions older than this server run mean a restart or crash-restart — the
// holder's client may still be stopping its work, so the lease stays live
// until this run's start + ttl (see lease_rules.hpp); otherwise the sessions
// ended (client gone, terminated) — orphaned at once.
#pragma once

extern "C" {
#include "postgres.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
}

#include "lease_rules.hpp"

namespace singleton_lock {

uint64 binding_key(uint64 name_hash, int64 token);

// Binds this session to the tenure (name, token). Drops this session's
// binding of an earlier tenure of the same name. Undone if the
// (sub)transaction that made it aborts. Raises 54000 beyond
// singleton_lock.max_bound_leases tenures per session.
void bind_this_session(uint64 name_hash, int64 token);
// Ends this session's binding of the tenure, if it has one.
void unbind_this_session(uint64 name_hash, int64 token);

// What the row says about the binding (bound_since, bound_timeline).
struct StoredBinding {
    bool bound;
    TimestampTz bound_since;  // start of the newest bound session
    int32 timeline;           // timeline the binding was made on
};
Binding observe_binding(uint64 name_hash, int64 token, const StoredBinding& stored);

// When this server run began: the postmaster's start or its last
// crash-restart (a crash-restart restarts the checkpointer too).
TimestampTz server_epoch();
// The timeline this server writes (or, on a standby, replays).
TimeLineID current_timeline();

// Start time of this session's backend (the row's bound_since).
TimestampTz own_session_start();

// Registered once from _PG_init: (sub)transaction callbacks that undo
// aborted bindings, the exit hook that wakes waiters, and the hooks that
// notice DISCARD ALL / pg_advisory_unlock_all() dropping the binding locks.
void install_binding_hooks();

// The holder id used when singleton_acquire gets holder => NULL: stable for
// the session, with a random part (a holder id is a credential).
const char* default_holder();

}  // namespace singleton_lock
