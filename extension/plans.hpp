// The SQL the functions run on singleton_lock_leases, as SPI plans prepared
// once per backend and kept while the extension stays where it is.
//
// Every statement names the table and the state function with the
// extension's schema, quoted. When the extension moves (DROP EXTENSION, then
// CREATE EXTENSION ... SCHEMA other) or any schema is renamed, the plans are
// dropped and prepared again: a backend never keeps querying an old schema
// (where someone might since have planted a table of that name).
#pragma once

extern "C" {
#include "postgres.h"
#include "executor/spi.h"
}

namespace singleton_lock {

enum PlanId {
    kLoad,               // (name) -> lease columns
    kLoadForUpdate,      // (name) -> lease columns, row locked FOR UPDATE
    kLoadOwnForKeyShare, // (name, token, role) -> lease columns, locked only if ours
    kLoadOwnForUpdate,   // (name, token, role) -> lease columns, locked only if ours
    kInsertIfMissing,    // (name)
    kTake,               // a new tenure: the caller's own, or a waiter's (handoff)
    kRenew,              // same tenure, new expiry (and binding, priority)
    kMarkBound,          // (name, pid, session start, timeline, key): a newer session bound it
    kHeartbeat,          // (name, token, now, ttl|NULL, role) -> expires_at, bound
    kFree,               // (name, now, why): the tenure ends, nobody holds the lease
    kSetPaused,          // (name, paused, reason, role, now)
    kPlanCount
};

// Columns of the lease-loading plans, 1-based as SPI counts them.
enum LeaseColumn {
    kColReleased = 1,
    kColHolder,
    kColHolderRole,
    kColToken,
    kColExpiresAt,
    kColTtl,
    kColBoundSince,
    kColBoundTimeline,
    kColBindingKey,
    kColPriority,
    kColPaused,
};

// Called by every entry point (inside its SPI connection) with the schema
// its own function lives in. The first call in a backend (and the first after
// the schema changed) prepares and plans every statement.
void use_plans_of(Oid extension_schema);

// Runs a plan; raises unless SPI returns `expected`.
void run(PlanId id, Datum* values, const char* nulls, int expected);

// The first row of the last result.
bool column_is_null(int column);
Datum column(int column);
// A text column copied into the memory context that was current at
// SPI_connect (so it outlives SPI_finish); nullptr for NULL.
char* text_column_copy(int column);
// A string copied into that same context: what a function returns is read after SPI_finish.
char* copy_out(const char* s);
char* copy_out(const char* s, size_t len);  // len bytes, not NUL-terminated, then a NUL

// Registered once from _PG_init: renamed schemas drop the plans.
void install_plan_invalidation();

}  // namespace singleton_lock
