// Session binding: a lease can be tied to the database sessions of its
// holder, so that it is free the moment the last of them ends.
//
// Every tenure has a random binding key (stored in its row); each session
// bound to the tenure holds a share lock on the key's tag at session level,
// for its whole life. (A waiter may take the lock on a key of its own before
// it gets the lease: a release can then hand it the lease, already bound.) "Does a bound session still exist?" is a conditional exclusive
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

// A fresh random binding key (never 0).
uint64 new_binding_key();

// Binds this session to a binding key of the lease: of its current tenure
// (then this session's bindings of earlier tenures go), or a waiter's own key
// for a tenure it may be handed. Undone if the (sub)transaction that made it
// aborts. Raises 54000 beyond singleton_lock.max_bound_leases per session.
void bind_this_session(uint64 name_hash, uint64 key, bool tenure_is_current = true);
// Ends this session's binding of the tenure, if it has one, once the
// current transaction commits (a release that rolls back keeps it).
void unbind_this_session(uint64 name_hash, uint64 key);
// Ends it now (a waiter's key that no tenure got).
void unbind_now(uint64 name_hash, uint64 key);

// What the row says about the binding (bound_since, bound_timeline).
struct StoredBinding {
    bool bound;
    TimestampTz bound_since;  // start of the newest bound session
    int32 timeline;           // timeline the binding was made on
};
Binding observe_binding(uint64 key, const StoredBinding& stored);

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
