// SQL entry points. Each one checks its own arguments (the functions are not
// STRICT: a NULL gets a clear error rather than a silent NULL), then runs the
// lease operation inside one SPI connection.
extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

#include "guard.hpp"
#include "lease_rules.hpp"
#include "lease_store.hpp"
#include "session_binding.hpp"
#include "settings.hpp"
#include "waiting.hpp"

using namespace singleton_lock;

namespace {

LeaseKey name_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("%s: argument \"name\" must not be NULL", fn)));
    LeaseKey key;
    key.name = PG_GETARG_TEXT_PP(argno);
    key.name_len = VARSIZE_ANY_EXHDR(key.name);
    int chars = pg_mbstrlen_with_len(VARDATA_ANY(key.name), key.name_len);
    if (chars < 1 || chars > kMaxNameChars)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s: argument \"name\" must be 1 to %d characters long", fn, kMaxNameChars),
                 errdetail("It has %d characters.", chars)));
    key.name_str = text_to_cstring(key.name);
    key.name_hash = lease_name_hash(VARDATA_ANY(key.name), key.name_len);
    return key;
}

int64 token_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("%s: argument \"token\" must not be NULL", fn)));
    return PG_GETARG_INT64(argno);
}

int64 interval_arg_micros(FunctionCallInfo fcinfo, int argno, const char* fn, const char* arg) {
    const Interval* value = PG_GETARG_INTERVAL_P(argno);
    auto micros = cpp_call([&] { return interval_micros(value->time, value->day, value->month); });
    if (!micros)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"%s\" is out of range", fn, arg)));
    return *micros;
}

// A ttl: 0 < ttl <= singleton_lock.max_ttl.
int64 ttl_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("%s: argument \"ttl\" must not be NULL", fn)));
    int64 ttl = interval_arg_micros(fcinfo, argno, fn, "ttl");
    if (ttl <= 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"ttl\" must be greater than zero", fn)));
    if (ttl > static_cast<int64>(max_ttl_seconds) * USECS_PER_SEC)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"ttl\" must not exceed singleton_lock.max_ttl "
                               "(%d s)",
                               fn, max_ttl_seconds)));
    return ttl;
}

const char* holder_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    if (PG_ARGISNULL(argno)) {
        if (!bind_session)
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("%s: argument \"holder\" must not be NULL when "
                            "singleton_lock.bind_session is off",
                            fn),
                     errdetail("An unbound lease has no session to derive a holder id from.")));
        return default_holder();
    }
    text* holder = PG_GETARG_TEXT_PP(argno);
    int chars = pg_mbstrlen_with_len(VARDATA_ANY(holder), VARSIZE_ANY_EXHDR(holder));
    if (chars < 1 || chars > kMaxHolderChars)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"holder\" must be 1 to %d characters long", fn,
                               kMaxHolderChars),
                        errdetail("It has %d characters.", chars)));
    return text_to_cstring(holder);
}

int64 wait_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("%s: argument \"wait\" must not be NULL", fn)));
    int64 wait = interval_arg_micros(fcinfo, argno, fn, "wait");
    if (wait < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"wait\" must not be negative", fn)));
    return wait;
}

// An attempt that locked the row and then lost the race must not keep that
// row lock while it waits (it would block the winner's heartbeats), so when
// the transaction outlives this call the attempt runs in a subtransaction
// that is rolled back on such a refusal.
AcquireResult attempt(const AcquireRequest& request, bool isolate) {
    if (!isolate) return acquire_once(request);
    MemoryContext caller_context = CurrentMemoryContext;
    ResourceOwner caller_owner = CurrentResourceOwner;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(caller_context);
    AcquireResult result = acquire_once(request);
    if (result.refused_while_locked)
        RollbackAndReleaseCurrentSubTransaction();
    else
        ReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(caller_context);
    CurrentResourceOwner = caller_owner;
    return result;
}

AcquireResult acquire_waiting(AcquireRequest request, int64 wait_us) {
    TimestampTz deadline = GetCurrentTimestamp() + wait_us;
    if (deadline < 0 || !IS_VALID_TIMESTAMP(deadline)) deadline = END_TIMESTAMP - 1;
    bool isolate = wait_us > 0 || IsTransactionBlock();
    request.lock_first = !isolate;
    bool registered = false;
    AcquireResult result;
    for (;;) {
        request.now = GetCurrentTimestamp();
        result = attempt(request, isolate);
        if (result.acquired || wait_us == 0) break;
        if (GetCurrentTimestamp() >= deadline) break;
        if (!registered) {
            // Register first, then look again: a release committed in between
            // is seen by that look, a later one wakes us.
            register_waiter(request.key.name_hash);
            registered = true;
            continue;
        }
        TimestampTz until = deadline;
        if (result.has_expiry && result.expires_at < until) until = result.expires_at;
        sleep_until(until);
    }
    if (registered) unregister_waiter(request.key.name_hash);
    return result;
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(singleton_acquire);
Datum singleton_acquire(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_acquire";
    AcquireRequest request;
    request.key = name_arg(fcinfo, 0, fn);
    request.ttl_us = ttl_arg(fcinfo, 1, fn);
    request.holder = holder_arg(fcinfo, 2, fn);
    int64 wait_us = wait_arg(fcinfo, 3, fn);
    request.bind_session = bind_session;
    if (wait_us > 0 && IsolationUsesXactSnapshot())
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("%s: a waiting acquire needs READ COMMITTED isolation", fn),
                        errdetail("A transaction snapshot would never see the release.")));

    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);

    locate_schema(fcinfo->flinfo->fn_oid);
    SPI_connect();
    AcquireResult result = acquire_waiting(request, wait_us);
    SPI_finish();

    Datum values[4] = {BoolGetDatum(result.acquired), Int64GetDatum(result.token),
                       result.holder != nullptr ? CStringGetTextDatum(result.holder) : (Datum)0,
                       TimestampTzGetDatum(result.expires_at)};
    // A token is a capability: never shown to a caller who does not hold the lease.
    bool nulls[4] = {false, !result.acquired, result.holder == nullptr, !result.has_expiry};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    return (Datum)0;
}

PG_FUNCTION_INFO_V1(singleton_heartbeat);
Datum singleton_heartbeat(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_heartbeat";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    int64 token = token_arg(fcinfo, 1, fn);
    const Interval* ttl = nullptr;
    if (!PG_ARGISNULL(2)) ttl = micros_to_interval(ttl_arg(fcinfo, 2, fn));

    locate_schema(fcinfo->flinfo->fn_oid);
    SPI_connect();
    TimestampTz expiry;
    bool renewed = heartbeat(key, token, ttl, GetCurrentTimestamp(), &expiry);
    SPI_finish();
    if (!renewed) PG_RETURN_NULL();
    PG_RETURN_TIMESTAMPTZ(expiry);
}

PG_FUNCTION_INFO_V1(singleton_release);
Datum singleton_release(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_release";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    int64 token = token_arg(fcinfo, 1, fn);
    locate_schema(fcinfo->flinfo->fn_oid);
    SPI_connect();
    bool released = release(key, token, GetCurrentTimestamp());
    SPI_finish();
    PG_RETURN_BOOL(released);
}

PG_FUNCTION_INFO_V1(singleton_force_release);
Datum singleton_force_release(PG_FUNCTION_ARGS) {
    LeaseKey key = name_arg(fcinfo, 0, "singleton_force_release");
    locate_schema(fcinfo->flinfo->fn_oid);
    SPI_connect();
    bool released = force_release(key, GetCurrentTimestamp());
    SPI_finish();
    PG_RETURN_BOOL(released);
}

PG_FUNCTION_INFO_V1(singleton_assert);
Datum singleton_assert(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_assert";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    int64 token = token_arg(fcinfo, 1, fn);
    locate_schema(fcinfo->flinfo->fn_oid);
    SPI_connect();
    assert_holds(key, token, GetCurrentTimestamp());
    SPI_finish();
    PG_RETURN_VOID();
}

// singleton_lock_state(released, holder_pid, holder_started, expires_at, now)
PG_FUNCTION_INFO_V1(singleton_lock_state);
Datum singleton_lock_state(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(4))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("singleton_lock_state: argument \"now\" must not be NULL")));
    LeaseRow row;
    row.exists = true;
    row.released = PG_ARGISNULL(0) || PG_GETARG_BOOL(0);
    row.session_bound = !PG_ARGISNULL(1) && !PG_ARGISNULL(2);
    row.expires_at = PG_ARGISNULL(3) ? DT_NOBEGIN : PG_GETARG_TIMESTAMPTZ(3);
    TimestampTz now = PG_GETARG_TIMESTAMPTZ(4);
    observe_bound_session(row, PG_GETARG_INT32(1), PG_GETARG_TIMESTAMPTZ(2));
    const char* state = cpp_call([&] { return state_name(classify(row, now)); });
    PG_RETURN_TEXT_P(cstring_to_text(state));
}

}  // extern "C"
