// GUCs of the extension (defined in module.cpp's _PG_init).
#pragma once

extern "C" {
#include "postgres.h"
}

namespace singleton_lock {

// singleton_lock.max_ttl, in seconds (GUC_UNIT_S); default one day.
extern int max_ttl_seconds;
// singleton_lock.bind_session: tie new leases to the calling session.
extern bool bind_session;
// singleton_lock.notify: NOTIFY singleton_lock on every change of holder and
// release. PostgreSQL serializes the commits of notifying transactions (a
// database-wide lock held through the WAL flush), so this caps throughput at
// high concurrency; LISTEN-based clients need it on.
extern bool notify_changes;
// singleton_lock.max_bound_leases: tenures one session may be bound to. Each
// binding is a lock-table entry; the shared lock table is finite
// (max_locks_per_transaction * (max_connections + max_prepared_transactions)),
// so this keeps one session from exhausting it for everyone else.
extern int max_bound_leases;

}  // namespace singleton_lock
