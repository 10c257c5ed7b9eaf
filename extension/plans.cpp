#include "plans.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/syscache.h"
}

namespace singleton_lock {

namespace {

struct PlanSpec {
    const char* sql;  // %1$s is the extension's schema, quoted
    int nargs;
    Oid argtypes[13];
};

#define LEASE_COLUMNS                                                                      \
    "released, holder, holder_role, token, expires_at, ttl, bound_since, bound_timeline, " \
    "binding_key, priority, paused"
#define STATE_OF(now)                                                                  \
    "%1$s.singleton_lock_state(released, paused, binding_key, bound_since, "           \
    "bound_timeline, expires_at, ttl, " now ")"
#define LEASES "%1$s.singleton_lock_leases"
#define OWN_LEASE \
    " WHERE name = $1 AND token = $2 AND holder_role = $3 AND NOT released AND NOT paused"

const PlanSpec kPlans[kPlanCount] = {
    {"SELECT " LEASE_COLUMNS " FROM " LEASES " WHERE name = $1", 1, {TEXTOID}},
    {"SELECT " LEASE_COLUMNS " FROM " LEASES " WHERE name = $1 FOR UPDATE", 1, {TEXTOID}},
    // Only the acquiring role's current token locks the row: a guessed token
    // of someone else's lease delays nobody.
    {"SELECT " LEASE_COLUMNS " FROM " LEASES OWN_LEASE " FOR KEY SHARE",
     3,
     {TEXTOID, INT8OID, OIDOID}},
    // FOR UPDATE, unlike an UPDATE alone, waits for fenced transactions.
    {"SELECT " LEASE_COLUMNS " FROM " LEASES OWN_LEASE " FOR UPDATE",
     3,
     {TEXTOID, INT8OID, OIDOID}},
    {"INSERT INTO " LEASES " (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", 1, {TEXTOID}},
    {"UPDATE " LEASES " SET holder = $2, holder_role = $3, token = $4, released = false,"
     " acquired_at = $5, renewed_at = $5, expires_at = $6, ttl = $7, holder_pid = $8,"
     " bound_since = $9, bound_timeline = $10, binding_key = $11, priority = $12,"
     " transitions = transitions + 1, last_transition = COALESCE($13, last_transition)"
     " WHERE name = $1",
     13,
     {TEXTOID, TEXTOID, OIDOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INTERVALOID, INT4OID,
      TIMESTAMPTZOID, INT4OID, INT8OID, INT4OID, TEXTOID}},
    // $5..$8 NULL: this call does not bind (the lease keeps its bindings).
    {"UPDATE " LEASES " SET renewed_at = $2, expires_at = $3, ttl = $4,"
     " holder_pid = COALESCE($5, holder_pid),"
     " bound_since = CASE WHEN $6 IS NULL THEN bound_since"
     "                    ELSE GREATEST(bound_since, $6) END,"
     " bound_timeline = COALESCE($7, bound_timeline),"
     " binding_key = COALESCE(binding_key, $8), priority = $9 WHERE name = $1",
     9,
     {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INTERVALOID, INT4OID, TIMESTAMPTZOID, INT4OID,
      INT8OID, INT4OID}},
    {"UPDATE " LEASES " SET holder_pid = $2, bound_since = $3, bound_timeline = $4,"
     " binding_key = COALESCE(binding_key, $5) WHERE name = $1",
     5,
     {TEXTOID, INT4OID, TIMESTAMPTZOID, INT4OID, INT8OID}},
    // A plain UPDATE of non-key columns: it does not conflict with the
    // FOR KEY SHARE lock of singleton_assert, so fenced transactions never
    // delay the leader's own heartbeats.
    {"UPDATE " LEASES " SET renewed_at = $3, expires_at = $3 + COALESCE($4, ttl),"
     " ttl = COALESCE($4, ttl)"
     " WHERE name = $1 AND token = $2 AND holder_role = $5 AND " STATE_OF("$3") " = 'held'"
     " RETURNING expires_at, binding_key IS NOT NULL",
     5,
     {TEXTOID, INT8OID, TIMESTAMPTZOID, INTERVALOID, OIDOID}},
    {"UPDATE " LEASES " SET released = true, expires_at = LEAST(expires_at, $2),"
     " holder_pid = NULL, binding_key = NULL, bound_since = NULL, bound_timeline = NULL,"
     " last_transition = $3 WHERE name = $1",
     3,
     {TEXTOID, TIMESTAMPTZOID, TEXTOID}},
    {"UPDATE " LEASES " SET paused = $2, paused_reason = $3, paused_by = $4, paused_at = $5"
     " WHERE name = $1",
     5,
     {TEXTOID, BOOLOID, TEXTOID, OIDOID, TIMESTAMPTZOID}},
};

SPIPlanPtr prepared[kPlanCount];
Oid plans_schema = InvalidOid;

void drop_plans() {
    for (SPIPlanPtr& p : prepared) {
        if (p != nullptr) SPI_freeplan(p);
        p = nullptr;
    }
    plans_schema = InvalidOid;
}

// Any schema renamed or dropped: prepare again, by the schema's current name.
// (A syscache callback must not run SPI: it only forgets the schema, and the
// next call, inside its SPI connection, frees the plans.)
bool schemas_changed = false;
void note_schema_change(Datum, int, uint32) { schemas_changed = true; }

SPIPlanPtr plan(PlanId id) {
    if (prepared[id] != nullptr) return prepared[id];
    const char* name = get_namespace_name(plans_schema);
    if (name == nullptr) elog(ERROR, "singleton_lock: the extension's schema no longer exists");
    const PlanSpec& spec = kPlans[id];
    // Generic from the first call: every query finds one row by its key, so a
    // custom plan is never better, and planning each of a backend's first
    // five calls costs CPU on the takeover's path (a woken waiter replanned).
    SPIPlanPtr fresh =
        SPI_prepare_cursor(psprintf(spec.sql, quote_identifier(name)), spec.nargs,
                           const_cast<Oid*>(spec.argtypes), CURSOR_OPT_GENERIC_PLAN);
    if (fresh == nullptr)
        elog(ERROR, "singleton_lock: could not prepare query %d: %s", static_cast<int>(id),
             SPI_result_code_string(SPI_result));
    if (SPI_keepplan(fresh) != 0) elog(ERROR, "singleton_lock: SPI_keepplan failed");
    prepared[id] = fresh;
    return fresh;
}

// Every statement prepared and its generic plan built at once: a plan's
// first use otherwise costs a millisecond or more of planning and catalog
// lookups, and the first use of some falls on a handover's path (the
// takeover's new tenure in a waiter's backend, the handoff's in a session
// that got its own lease handed over and now releases it).
void plan_all() {
    for (int id = 0; id < kPlanCount; id++) {
        SPIPlanPtr p = plan(static_cast<PlanId>(id));
        CachedPlan* generic = SPI_plan_get_cached_plan(p);
        if (generic != nullptr) ReleaseCachedPlan(generic, CurrentResourceOwner);
    }
}

}  // namespace

void use_plans_of(Oid extension_schema) {
    if (schemas_changed || extension_schema != plans_schema) {
        drop_plans();
        schemas_changed = false;
        plans_schema = extension_schema;
        plan_all();
    }
}

void run(PlanId id, Datum* values, const char* nulls, int expected) {
    int rc = SPI_execute_plan(plan(id), values, nulls, false, 0);
    if (rc != expected)
        elog(ERROR, "singleton_lock: query %d failed: %s", static_cast<int>(id),
             SPI_result_code_string(rc));
}

bool column_is_null(int col) {
    bool isnull;
    (void)SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
    return isnull;
}

Datum column(int col) {
    bool isnull;
    return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
}

char* copy_out(const char* s, size_t len) {
    char* copy = static_cast<char*>(SPI_palloc(len + 1));
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char* copy_out(const char* s) { return copy_out(s, strlen(s)); }

char* text_column_copy(int col) {
    if (column_is_null(col)) return nullptr;
    text* value = DatumGetTextPP(column(col));
    return copy_out(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
}

void install_plan_invalidation() {
    CacheRegisterSyscacheCallback(NAMESPACEOID, note_schema_change, (Datum)0);
}

}  // namespace singleton_lock
