#include "lease_store.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
}

#include "guard.hpp"
#include "heartbeat_flush.hpp"
#include "lease_rules.hpp"
#include "session_binding.hpp"
#include "settings.hpp"
#include "waiting.hpp"

namespace singleton_lock {

namespace {

constexpr const char* kNotifyChannel = "singleton_lock";

// %1$s is the extension's schema, quoted.
enum PlanId {
    kLoad,
    kLoadForUpdate,
    kInsertIfMissing,
    kTake,
    kRenew,
    kHeartbeat,
    kRelease,
    kForceRelease,
    kAssert,
    kPlanCount
};

struct PlanSpec {
    const char* sql;
    int nargs;
    Oid argtypes[10];
};

#define LEASE_COLUMNS "released, holder, token, expires_at, holder_pid, holder_started"
#define STATE_OF(now) \
    "%1$s.singleton_lock_state(released, holder_pid, holder_started, expires_at, " now ")"

const PlanSpec kPlans[kPlanCount] = {
    {"SELECT " LEASE_COLUMNS " FROM %1$s.singleton_lock_leases WHERE name = $1", 1, {TEXTOID}},
    {"SELECT " LEASE_COLUMNS " FROM %1$s.singleton_lock_leases WHERE name = $1 FOR UPDATE",
     1,
     {TEXTOID}},
    {"INSERT INTO %1$s.singleton_lock_leases (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
     1,
     {TEXTOID}},
    {"UPDATE %1$s.singleton_lock_leases SET holder = $2, token = $3, released = false,"
     " acquired_at = $4, renewed_at = $4, expires_at = $5, ttl = $6, holder_pid = $7,"
     " holder_started = $8, transitions = transitions + 1,"
     " last_transition = COALESCE($9, last_transition) WHERE name = $1",
     9,
     {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INTERVALOID, INT4OID,
      TIMESTAMPTZOID, TEXTOID}},
    {"UPDATE %1$s.singleton_lock_leases SET renewed_at = $2, expires_at = $3, ttl = $4,"
     " holder_pid = $5, holder_started = $6 WHERE name = $1",
     6,
     {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INTERVALOID, INT4OID, TIMESTAMPTZOID}},
    // A plain UPDATE of non-key columns: it does not conflict with the
    // FOR KEY SHARE lock of singleton_assert, so fenced transactions never
    // delay the leader's own heartbeats.
    {"UPDATE %1$s.singleton_lock_leases SET renewed_at = $3,"
     " expires_at = $3 + COALESCE($4, ttl), ttl = COALESCE($4, ttl)"
     " WHERE name = $1 AND token = $2 AND " STATE_OF(
         "$3") " = 'held'"
               " RETURNING expires_at, holder_pid IS NOT NULL",
     4,
     {TEXTOID, INT8OID, TIMESTAMPTZOID, INTERVALOID}},
    // FOR UPDATE, unlike the UPDATE alone, waits for fenced transactions.
    {"WITH cur AS (SELECT name FROM %1$s.singleton_lock_leases WHERE name = $1 AND token = $2"
     " AND " STATE_OF(
         "$3") " = 'held' FOR UPDATE)"
               " UPDATE %1$s.singleton_lock_leases l SET released = true, expires_at = $3,"
               " holder_pid = NULL, holder_started = NULL, last_transition = 'released'"
               " FROM cur WHERE l.name = cur.name RETURNING l.name",
     3,
     {TEXTOID, INT8OID, TIMESTAMPTZOID}},
    {"WITH cur AS (SELECT name FROM %1$s.singleton_lock_leases WHERE name = $1"
     " AND NOT released FOR UPDATE)"
     " UPDATE %1$s.singleton_lock_leases l SET released = true,"
     " expires_at = LEAST(l.expires_at, $2), holder_pid = NULL, holder_started = NULL,"
     " last_transition = 'forced' FROM cur WHERE l.name = cur.name RETURNING l.name",
     2,
     {TEXTOID, TIMESTAMPTZOID}},
    {"SELECT token, " STATE_OF("$2") " FROM %1$s.singleton_lock_leases WHERE name = $1"
                                     " FOR KEY SHARE",
     2,
     {TEXTOID, TIMESTAMPTZOID}},
};

SPIPlanPtr prepared[kPlanCount];
Oid schema_oid = InvalidOid;

SPIPlanPtr plan(PlanId id) {
    if (prepared[id] != nullptr) return prepared[id];
    if (!OidIsValid(schema_oid)) elog(ERROR, "singleton_lock: extension schema unknown");
    const char* schema = quote_identifier(get_namespace_name(schema_oid));
    const PlanSpec& spec = kPlans[id];
    SPIPlanPtr fresh =
        SPI_prepare(psprintf(spec.sql, schema), spec.nargs, const_cast<Oid*>(spec.argtypes));
    if (fresh == nullptr)
        elog(ERROR, "singleton_lock: could not prepare query %d: %s", static_cast<int>(id),
             SPI_result_code_string(SPI_result));
    if (SPI_keepplan(fresh) != 0) elog(ERROR, "singleton_lock: SPI_keepplan failed");
    prepared[id] = fresh;
    return fresh;
}

void run(PlanId id, Datum* values, const char* nulls, int expected) {
    int rc = SPI_execute_plan(plan(id), values, nulls, false, 0);
    if (rc != expected)
        elog(ERROR, "singleton_lock: query %d failed: %s", static_cast<int>(id),
             SPI_result_code_string(rc));
}

bool column_is_null(int column) {
    bool isnull;
    (void)SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);
    return isnull;
}

Datum column(int column) {
    bool isnull;
    return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);
}

// Copied into the caller's (pre-SPI) memory context.
char* text_column_copy(int col) {
    if (column_is_null(col)) return nullptr;
    text* value = DatumGetTextPP(column(col));
    int len = VARSIZE_ANY_EXHDR(value);
    char* copy = static_cast<char*>(SPI_palloc(len + 1));
    memcpy(copy, VARDATA_ANY(value), len);
    copy[len] = '\0';
    return copy;
}

struct StoredLease {
    bool exists;
    bool released;
    char* holder;
    int64 token;
    bool has_expiry;
    TimestampTz expires_at;
    bool bound;
    int32 holder_pid;
    TimestampTz holder_started;
};

StoredLease load(const LeaseKey& key, bool for_update) {
    Datum args[1] = {PointerGetDatum(key.name)};
    run(for_update ? kLoadForUpdate : kLoad, args, nullptr, SPI_OK_SELECT);
    StoredLease row = {};
    if (SPI_processed == 0) return row;
    row.exists = true;
    row.released = column_is_null(1) || DatumGetBool(column(1));
    row.holder = text_column_copy(2);
    row.token = DatumGetInt64(column(3));
    row.has_expiry = !column_is_null(4);
    row.expires_at = row.has_expiry ? DatumGetTimestampTz(column(4)) : 0;
    row.bound = !column_is_null(5) && !column_is_null(6);
    if (row.bound) {
        row.holder_pid = DatumGetInt32(column(5));
        row.holder_started = DatumGetTimestampTz(column(6));
    }
    return row;
}

AcquireDecision decide(const StoredLease& stored, const AcquireRequest& request) {
    LeaseRow row;
    row.exists = stored.exists;
    row.released = stored.released;
    row.holder = stored.holder != nullptr ? stored.holder : "";
    row.token = stored.token;
    row.expires_at = stored.expires_at;
    row.session_bound = stored.bound;
    observe_bound_session(row, stored.holder_pid, stored.holder_started);
    return cpp_call([&] { return decide_acquire(row, request.holder, request.now); });
}

AcquireResult refused(const StoredLease& row, bool locked) {
    AcquireResult result = {};
    result.acquired = false;
    result.holder = row.holder;
    result.has_expiry = row.has_expiry;
    result.expires_at = row.expires_at;
    result.refused_while_locked = locked;
    return result;
}

TimestampTz expiry_or_error(TimestampTz now, int64 ttl_us) {
    auto expiry = cpp_call([&] { return expiry_after(now, ttl_us); });
    if (!expiry || !IS_VALID_TIMESTAMP(*expiry))
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
                        errmsg("lease expiry is out of range")));
    return *expiry;
}

void notify_change(const LeaseKey& key) {
    if (notify_changes) Async_Notify(kNotifyChannel, key.name_str);
}

}  // namespace

void locate_schema(Oid calling_function) {
    if (!OidIsValid(schema_oid)) schema_oid = get_func_namespace(calling_function);
}

Interval* micros_to_interval(int64 micros) {
    Interval* interval = static_cast<Interval*>(palloc0(sizeof(Interval)));
    interval->time = micros;
    return interval;
}

AcquireResult acquire_once(const AcquireRequest& original) {
    AcquireRequest request = original;
    // Without a lock first when the lock would outlive a refusal; see AcquireRequest.
    StoredLease row = load(request.key, request.lock_first);
    bool locked = request.lock_first;
    if (!row.exists) {
        Datum args[1] = {PointerGetDatum(request.key.name)};
        run(kInsertIfMissing, args, nullptr, SPI_OK_INSERT);
        locked = false;
    } else if (!locked && decide(row, request).outcome == AcquireOutcome::Refuse) {
        return refused(row, false);
    }
    if (!locked) row = load(request.key, true);  // lock the newest version, decide again
    if (!row.exists)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("lease \"%s\" was deleted concurrently", request.key.name_str)));
    request.now = GetCurrentTimestamp();  // the lock may have waited
    AcquireDecision decision = decide(row, request);
    if (decision.outcome == AcquireOutcome::Refuse) return refused(row, true);

    TimestampTz expires_at = expiry_or_error(request.now, request.ttl_us);
    SessionId session = own_session();
    char binding_nulls = request.bind_session ? ' ' : 'n';
    AcquireResult result = {};
    result.acquired = true;
    result.holder = row.holder;
    result.has_expiry = true;
    result.expires_at = expires_at;

    if (decision.outcome == AcquireOutcome::TakeNew) {
        auto token = cpp_call([&] { return next_token(row.token, GetWALInsertionTimeLine()); });
        if (!token)
            ereport(ERROR,
                    (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                     errmsg("fencing tokens of lease \"%s\" are exhausted", request.key.name_str)));
        const char* ended = cpp_call([&] { return tenure_end_name(decision.previous_end); });
        Datum args[9] = {PointerGetDatum(request.key.name),
                         CStringGetTextDatum(request.holder),
                         Int64GetDatum(*token),
                         TimestampTzGetDatum(request.now),
                         TimestampTzGetDatum(expires_at),
                         PointerGetDatum(micros_to_interval(request.ttl_us)),
                         Int32GetDatum(session.pid),
                         TimestampTzGetDatum(session.started),
                         ended != nullptr ? CStringGetTextDatum(ended) : (Datum)0};
        const char nulls[10] = {' ',           ' ',           ' ',
                                ' ',           ' ',           ' ',
                                binding_nulls, binding_nulls, ended != nullptr ? ' ' : 'n',
                                '\0'};
        run(kTake, args, nulls, SPI_OK_UPDATE);
        // A token must never be handed out twice, whatever synchronous_commit says.
        ForceSyncCommit();
        notify_change(request.key);
        result.token = *token;
        size_t holder_len = strlen(request.holder);
        result.holder = static_cast<char*>(SPI_palloc(holder_len + 1));
        memcpy(result.holder, request.holder, holder_len + 1);
    } else {
        Datum args[6] = {
            PointerGetDatum(request.key.name), TimestampTzGetDatum(request.now),
            TimestampTzGetDatum(expires_at),   PointerGetDatum(micros_to_interval(request.ttl_us)),
            Int32GetDatum(session.pid),        TimestampTzGetDatum(session.started)};
        const char nulls[7] = {' ', ' ', ' ', ' ', binding_nulls, binding_nulls, '\0'};
        run(kRenew, args, nulls, SPI_OK_UPDATE);
        result.token = row.token;
    }
    if (request.bind_session) bind_lease_to_this_session(request.key.name_hash);
    return result;
}

bool heartbeat(const LeaseKey& key, int64 token, const Interval* ttl_or_null, TimestampTz now,
               TimestampTz* new_expiry) {
    Datum args[4] = {PointerGetDatum(key.name), Int64GetDatum(token), TimestampTzGetDatum(now),
                     PointerGetDatum(ttl_or_null)};
    const char nulls[5] = {' ', ' ', ' ', ttl_or_null != nullptr ? ' ' : 'n', '\0'};
    bool wrote_before = TransactionIdIsValid(GetTopTransactionIdIfAny());
    run(kHeartbeat, args, nulls, SPI_OK_UPDATE_RETURNING);
    if (SPI_processed == 0) return false;
    *new_expiry = DatumGetTimestampTz(column(1));
    bool session_bound = DatumGetBool(column(2));
    if (session_bound) skip_flush_if_sole_write(wrote_before);
    return true;
}

// A lease was freed: tell listeners and wake waiters once this commits.
static void announce_freed(const LeaseKey& key) {
    notify_change(key);
    wake_waiters_at_commit(key.name_hash);
}

bool release(const LeaseKey& key, int64 token, TimestampTz now) {
    Datum args[3] = {PointerGetDatum(key.name), Int64GetDatum(token), TimestampTzGetDatum(now)};
    run(kRelease, args, nullptr, SPI_OK_UPDATE_RETURNING);
    if (SPI_processed == 0) return false;
    announce_freed(key);
    return true;
}

bool force_release(const LeaseKey& key, TimestampTz now) {
    Datum args[2] = {PointerGetDatum(key.name), TimestampTzGetDatum(now)};
    run(kForceRelease, args, nullptr, SPI_OK_UPDATE_RETURNING);
    if (SPI_processed == 0) return false;
    announce_freed(key);
    return true;
}

void assert_holds(const LeaseKey& key, int64 token, TimestampTz now) {
    Datum args[2] = {PointerGetDatum(key.name), TimestampTzGetDatum(now)};
    run(kAssert, args, nullptr, SPI_OK_SELECT);
    const char* detail = "The lease was never taken.";
    if (SPI_processed > 0) {
        char* state = TextDatumGetCString(column(2));
        bool ours = DatumGetInt64(column(1)) == token;
        if (ours && strcmp(state, "held") == 0) return;
        detail = !ours ? "Another tenure has begun since this token was issued."
                       : psprintf("The lease is %s.", state);
    }
    ereport(ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             errmsg("lease \"%s\" is not held with token " INT64_FORMAT, key.name_str, token),
             errdetail_internal("%s", detail),
             errhint("A stale leader must not write: acquire the lease again.")));
}

}  // namespace singleton_lock
