#include "lease_store.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
}

#include "call_context.hpp"
#include "guard.hpp"
#include "heartbeat_flush.hpp"
#include "lease_rules.hpp"
#include "plans.hpp"
#include "prepare_guard.hpp"
#include "session_binding.hpp"
#include "settings.hpp"
#include "waiting.hpp"

namespace singleton_lock {

namespace {

constexpr const char* kNotifyChannel = "singleton_lock";

struct StoredLease {
    bool exists;
    bool released;
    char* holder;
    Oid role;
    int64 token;
    bool has_expiry;
    TimestampTz expires_at;
    int64 ttl_us;
    StoredBinding binding;
};

int64 interval_column_micros(int col) {
    if (column_is_null(col)) return 0;
    const Interval* value = DatumGetIntervalP(column(col));
    auto micros = cpp_call([&] { return interval_micros(value->time, value->day, value->month); });
    return micros.value_or(0);
}

// Reads the first row of the last lease-loading plan.
StoredLease stored_lease() {
    StoredLease row = {};
    if (SPI_processed == 0) return row;
    row.exists = true;
    row.released = column_is_null(kColReleased) || DatumGetBool(column(kColReleased));
    row.holder = text_column_copy(kColHolder);
    row.role = column_is_null(kColHolderRole) ? InvalidOid : DatumGetObjectId(column(kColHolderRole));
    row.token = DatumGetInt64(column(kColToken));
    row.has_expiry = !column_is_null(kColExpiresAt);
    row.expires_at = row.has_expiry ? DatumGetTimestampTz(column(kColExpiresAt)) : 0;
    row.ttl_us = interval_column_micros(kColTtl);
    row.binding.bound = !column_is_null(kColBoundSince);
    if (row.binding.bound) {
        row.binding.bound_since = DatumGetTimestampTz(column(kColBoundSince));
        row.binding.timeline =
            column_is_null(kColBoundTimeline) ? 0 : DatumGetInt32(column(kColBoundTimeline));
    }
    return row;
}

StoredLease load(const LeaseKey& key, PlanId plan) {
    Datum args[1] = {PointerGetDatum(key.name)};
    run(plan, args, nullptr, SPI_OK_SELECT);
    return stored_lease();
}

StoredLease load_own_for_key_share(const LeaseKey& key, int64 token, Oid role) {
    Datum args[3] = {PointerGetDatum(key.name), Int64GetDatum(token), ObjectIdGetDatum(role)};
    run(kLoadOwnForKeyShare, args, nullptr, SPI_OK_SELECT);
    return stored_lease();
}

// The row as the lease rules see it, with what became of its bound sessions.
LeaseRow rule_row(const StoredLease& stored, const LeaseKey& key) {
    LeaseRow row;
    row.exists = stored.exists;
    row.released = stored.released;
    row.holder = stored.holder != nullptr ? stored.holder : "";
    row.role = stored.role;
    row.token = stored.token;
    row.expires_at = stored.expires_at;
    row.ttl = stored.ttl_us;
    row.binding = stored.binding.bound ? Binding::Live : Binding::Unbound;
    bool check = cpp_call([&] { return needs_binding_check(row); });
    if (check) row.binding = observe_binding(key.name_hash, stored.token, stored.binding);
    if (row.binding == Binding::EndedByRestart) row.server_epoch = server_epoch();
    return row;
}

// A holder id is a credential: a caller of another role sees which role
// holds the lease, never the id.
char* holder_as_seen_by(const StoredLease& row, Oid caller) {
    if (row.holder == nullptr || row.role == caller) return row.holder;
    const char* role = GetUserNameFromId(row.role, true);
    return psprintf("<role %s>", role != nullptr ? role : "(dropped)");
}

AcquireResult refused(const StoredLease& stored, const LeaseRow& row, Oid caller, bool locked) {
    AcquireResult result = {};
    result.acquired = false;
    result.holder = holder_as_seen_by(stored, caller);
    result.has_expiry = stored.has_expiry;
    result.expires_at = cpp_call([&] { return lease_deadline(row); });
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

// A lease was freed: tell listeners and wake waiters once this commits.
void announce_freed(const LeaseKey& key) {
    notify_change(key);
    wake_waiters_at_commit(key.name_hash);
}

int64 new_token_or_error(const AcquireRequest& request, int64 previous) {
    auto token = cpp_call([&] {
        return next_token(previous, current_timeline(), GetXLogInsertRecPtr());
    });
    if (!token)
        ereport(ERROR,
                (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                 errmsg("fencing tokens of lease \"%s\" are exhausted", request.key.name_str)));
    return *token;
}

void write_new_tenure(const AcquireRequest& request, int64 token, TimestampTz expires_at,
                      TenureEnd previous_end) {
    const char* ended = cpp_call([&] { return tenure_end_name(previous_end); });
    Datum args[11] = {PointerGetDatum(request.key.name),
                      CStringGetTextDatum(request.holder),
                      ObjectIdGetDatum(request.role),
                      Int64GetDatum(token),
                      TimestampTzGetDatum(request.now),
                      TimestampTzGetDatum(expires_at),
                      PointerGetDatum(micros_to_interval(request.ttl_us)),
                      Int32GetDatum(MyProcPid),
                      TimestampTzGetDatum(own_session_start()),
                      Int32GetDatum(static_cast<int32>(current_timeline())),
                      ended != nullptr ? CStringGetTextDatum(ended) : (Datum)0};
    char b = request.bind_session ? ' ' : 'n';
    const char nulls[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', b, b, b,
                            ended != nullptr ? ' ' : 'n', '\0'};
    run(kTake, args, nulls, SPI_OK_UPDATE);
    // A token must never be handed out twice, whatever synchronous_commit says.
    ForceSyncCommit();
    notify_change(request.key);
}

void write_renewal(const AcquireRequest& request, TimestampTz expires_at) {
    Datum args[7] = {PointerGetDatum(request.key.name),
                     TimestampTzGetDatum(request.now),
                     TimestampTzGetDatum(expires_at),
                     PointerGetDatum(micros_to_interval(request.ttl_us)),
                     Int32GetDatum(MyProcPid),
                     TimestampTzGetDatum(own_session_start()),
                     Int32GetDatum(static_cast<int32>(current_timeline()))};
    char b = request.bind_session ? ' ' : 'n';
    const char nulls[8] = {' ', ' ', ' ', ' ', b, b, b, '\0'};
    run(kRenew, args, nulls, SPI_OK_UPDATE);
}

char* palloc_copy(const char* s) {
    size_t len = strlen(s);
    char* copy = static_cast<char*>(SPI_palloc(len + 1));
    memcpy(copy, s, len + 1);
    return copy;
}

// Locks the row (creating it if need be) and returns it, unless a plain read
// shows a refusal first (see AcquireRequest::lock_first).
bool lock_row_or_refuse(const AcquireRequest& request, StoredLease* stored, AcquireResult* refusal) {
    *stored = load(request.key, request.lock_first ? kLoadForUpdate : kLoad);
    if (request.lock_first && stored->exists) return true;
    if (!stored->exists) {
        Datum args[1] = {PointerGetDatum(request.key.name)};
        run(kInsertIfMissing, args, nullptr, SPI_OK_INSERT);
    } else {
        LeaseRow row = rule_row(*stored, request.key);
        Caller caller{request.holder, request.role};
        if (cpp_call([&] { return decide_acquire(row, caller, request.now); }).outcome ==
            AcquireOutcome::Refuse) {
            *refusal = refused(*stored, row, request.role, false);
            return false;
        }
    }
    *stored = load(request.key, kLoadForUpdate);  // the newest version, locked
    if (!stored->exists)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("lease \"%s\" was deleted concurrently", request.key.name_str)));
    return true;
}

}  // namespace

Interval* micros_to_interval(int64 micros) {
    Interval* interval = static_cast<Interval*>(palloc0(sizeof(Interval)));
    interval->time = micros;
    return interval;
}

AcquireResult acquire_once(const AcquireRequest& original) {
    AcquireRequest request = original;
    StoredLease stored;
    AcquireResult result = {};
    if (!lock_row_or_refuse(request, &stored, &result)) return result;
    request.now = GetCurrentTimestamp();  // the lock may have waited
    LeaseRow row = rule_row(stored, request.key);
    Caller caller{request.holder, request.role};
    AcquireDecision decision = cpp_call([&] { return decide_acquire(row, caller, request.now); });
    if (decision.outcome == AcquireOutcome::Refuse)
        return refused(stored, row, request.role, true);

    TimestampTz expires_at = expiry_or_error(request.now, request.ttl_us);
    require_client_connected();
    result.acquired = true;
    result.has_expiry = true;
    result.expires_at = expires_at;
    result.holder = palloc_copy(request.holder);
    if (decision.outcome == AcquireOutcome::TakeNew) {
        result.token = new_token_or_error(request, stored.token);
        write_new_tenure(request, result.token, expires_at, decision.previous_end);
    } else {
        result.token = stored.token;
        write_renewal(request, expires_at);
    }
    if (request.bind_session) bind_this_session(request.key.name_hash, result.token);
    forbid_prepare("singleton_acquire");
    return result;
}

bool heartbeat(const LeaseKey& key, int64 token, Oid role, const Interval* ttl_or_null,
               TimestampTz now, TimestampTz* new_expiry) {
    Datum args[5] = {PointerGetDatum(key.name), Int64GetDatum(token), TimestampTzGetDatum(now),
                     PointerGetDatum(ttl_or_null), ObjectIdGetDatum(role)};
    const char nulls[6] = {' ', ' ', ' ', ttl_or_null != nullptr ? ' ' : 'n', ' ', '\0'};
    bool wrote_before = TransactionIdIsValid(GetTopTransactionIdIfAny());
    run(kHeartbeat, args, nulls, SPI_OK_UPDATE_RETURNING);
    if (SPI_processed == 0) return false;
    *new_expiry = DatumGetTimestampTz(column(1));
    bool session_bound = DatumGetBool(column(2));
    // A new ttl must be durable: after a crash the lease's restart deadline
    // is counted with the stored ttl (see heartbeat_flush.hpp).
    if (session_bound && ttl_or_null == nullptr) skip_flush_if_sole_write(wrote_before);
    return true;
}

bool release(const LeaseKey& key, int64 token, Oid role, TimestampTz now) {
    Datum args[4] = {PointerGetDatum(key.name), Int64GetDatum(token), TimestampTzGetDatum(now),
                     ObjectIdGetDatum(role)};
    run(kRelease, args, nullptr, SPI_OK_UPDATE_RETURNING);
    if (SPI_processed == 0) return false;
    announce_freed(key);
    unbind_this_session(key.name_hash, token);
    forbid_prepare("singleton_release");
    return true;
}

bool force_release(const LeaseKey& key, TimestampTz now) {
    Datum args[2] = {PointerGetDatum(key.name), TimestampTzGetDatum(now)};
    run(kForceRelease, args, nullptr, SPI_OK_UPDATE_RETURNING);
    if (SPI_processed == 0) return false;
    announce_freed(key);
    unbind_this_session(key.name_hash, DatumGetInt64(column(1)));
    forbid_prepare("singleton_force_release");
    return true;
}

bool bind_to_lease(const LeaseKey& key, int64 token, Oid role, TimestampTz now) {
    StoredLease stored = load_own_for_key_share(key, token, role);
    if (!stored.exists) return false;
    LeaseRow row = rule_row(stored, key);
    if (cpp_call([&] { return classify(row, now); }) != LeaseState::Held) return false;
    require_client_connected();
    bind_this_session(key.name_hash, token);
    forbid_prepare("singleton_bind");
    TimestampTz mine = own_session_start();
    if (stored.binding.bound && stored.binding.bound_since >= mine) return true;
    // This session is the newest bound one (the restart rule counts from it).
    Datum args[4] = {PointerGetDatum(key.name), Int32GetDatum(MyProcPid),
                     TimestampTzGetDatum(mine),
                     Int32GetDatum(static_cast<int32>(current_timeline()))};
    bool wrote_before = TransactionIdIsValid(GetTopTransactionIdIfAny());
    run(kMarkBound, args, nullptr, SPI_OK_UPDATE);
    skip_flush_if_sole_write(wrote_before);
    return true;
}

void assert_holds(const LeaseKey& key, int64 token, Oid role, TimestampTz now) {
    StoredLease stored = load_own_for_key_share(key, token, role);
    const char* detail;
    if (stored.exists) {
        LeaseRow row = rule_row(stored, key);
        LeaseState state = cpp_call([&] { return classify(row, now); });
        if (state == LeaseState::Held) return;
        detail = psprintf("The lease is %s.", cpp_call([&] { return state_name(state); }));
    } else {
        stored = load(key, kLoad);
        detail = !stored.exists || stored.token == 0 ? "The lease was never taken."
                 : stored.token != token ? "Another tenure has begun since this token was issued."
                 : stored.released       ? "The lease is free."
                                         : "The token was issued to another role.";
    }
    ereport(ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             errmsg("lease \"%s\" is not held with token " INT64_FORMAT, key.name_str, token),
             errdetail_internal("%s", detail),
             errhint("A stale leader must not write: acquire the lease again.")));
}

}  // namespace singleton_lock
