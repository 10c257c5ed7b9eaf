// The server-side wait of singleton_acquire(..., wait => ...).
//
// A waiter registers itself by holding a share lock on a per-name tag
// (visible in pg_locks), then sleeps on its process latch. Whoever frees the
// lease finds the registered waiters through the lock manager and sets their
// latches: a release or force-release right after it commits, an exiting
// holder session right after it dropped its binding lock. Registration comes
// before the waiter's own re-check, and the wake comes after the state change,
// so no wake-up is lost. Nothing polls.
#pragma once

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

namespace singleton_lock {

uint64 lease_name_hash(const char* name, int len);

// Transaction-scoped: an error or cancel releases the registration.
void register_waiter(uint64 name_hash);
void unregister_waiter(uint64 name_hash);
// The same for a holder's singleton_watch.
void register_watcher(uint64 name_hash);
void unregister_watcher(uint64 name_hash);

// Sleeps until woken, `until` passes, or an interrupt (statement_timeout,
// cancel) raises its error; ends the backend (FATAL) if the client
// disconnects meanwhile. With wake_on_client_input, returns true early when
// the client has sent something (its next statement, queued behind this one).
bool sleep_until(TimestampTz until, bool wake_on_client_input = false);

// Wake the waiters and watchers of this name now (when the change is
// already visible).
void wake_waiters_now(uint64 name_hash);
// Wake only the holder's watchers (a waiter of higher priority arrived).
void wake_watchers_now(uint64 name_hash);
// Wake them when the current transaction commits (nothing on rollback).
void wake_waiters_at_commit(uint64 name_hash);

// Registered once from _PG_init.
void install_commit_wakeups();

}  // namespace singleton_lock
