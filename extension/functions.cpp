// SQL entry points. Each one checks its own arguments (arguments.hpp), then
// does its work as the extension owner inside one SPI connection
// (call_context.hpp). Everything here is C-style: an error is a longjmp
// through these frames.
extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

#include "arguments.hpp"
#include "call_context.hpp"
#include "client_socket.hpp"
#include "guard.hpp"
#include "lease_rules.hpp"
#include "lease_store.hpp"
#include "session_binding.hpp"
#include "settings.hpp"
#include "subtransaction.hpp"
#include "wait_slices.hpp"
#include "waiter_registry.hpp"
#include "waiting.hpp"

using namespace singleton_lock;

namespace {

// An attempt that locked the row and then lost the race must not keep that
// row lock while it waits (it would block the winner's heartbeats), so when
// the transaction outlives this call the attempt runs in a subtransaction
// that is rolled back on such a refusal.
AcquireResult attempt(const AcquireRequest& request, bool isolate) {
    if (!isolate) return acquire_once(request);
    return in_subtransaction([&] { return acquire_once(request); },
                             [](const AcquireResult& r) { return !r.refused_while_locked; });
}

// A waiter in the registry (waiter_registry.hpp), bound in advance when it
// binds at all, so that a release can hand it the lease.
struct Registration {
    bool waiting;      // holds the waiter tag: woken by releases and session ends
    uint64 prebound;   // binding key this session holds for a handoff (0: none)
};

Registration register_for(AcquireRequest* request, int32 holder_priority) {
    Registration reg = {true, 0};
    // What a takeover after the holder's sessions ended asks first (restart
    // or exit?) is answered now, while waiting: its first answer in a backend
    // reads every backend's status (a millisecond on the takeover's path).
    (void)server_epoch();
    register_waiter(request->key.name_hash);
    Waiter me = {};
    me.name_hash = request->key.name_hash;
    me.database = MyDatabaseId;
    me.role = request->role;
    me.priority = request->priority;
    me.since = request->since;
    me.ttl_us = request->ttl_us;
    me.session_start = own_session_start();
    me.pid = MyProcPid;
    me.proc = MyProc;
    strlcpy(me.holder, request->holder, sizeof me.holder);
    if (request->bind_session) {
        me.binding_key = new_binding_key();
        bind_this_session(request->key.name_hash, me.binding_key, false);
    }
    if (register_this_waiter(me)) {
        reg.prebound = me.binding_key;
        // A waiter that outranks the holder asks it to step down.
        if (request->priority > holder_priority) wake_watchers_now(request->key.name_hash);
    } else if (me.binding_key != 0) {
        unbind_now(request->key.name_hash, me.binding_key);  // no handoff without a slot
    }
    request->prebound_key = reg.prebound;
    return reg;
}

void unregister(const AcquireRequest& request, const Registration& reg, bool acquired) {
    if (!reg.waiting) return;
    unregister_this_waiter();
    unregister_waiter(request.key.name_hash);
    if (reg.prebound != 0 && !acquired) unbind_now(request.key.name_hash, reg.prebound);
}

// When to look again: the lease's expiry, soon after yielding to a better
// waiter (in case it has gone), never for a paused lease (only a resume,
// which wakes us, ends that).
TimestampTz next_look(const AcquireResult& result, TimestampTz deadline) {
    TimestampTz until = deadline;
    if (result.yielded) return Min(until, GetCurrentTimestamp() + 100 * 1000);
    if (result.has_expiry && result.expires_at < until) until = result.expires_at;
    return until;
}

AcquireResult acquire_waiting(AcquireRequest request, int64 wait_us) {
    TimestampTz deadline = GetCurrentTimestamp() + wait_us;
    if (deadline < 0 || !IS_VALID_TIMESTAMP(deadline)) deadline = END_TIMESTAMP - 1;
    bool isolate = wait_us > 0 || IsTransactionBlock();
    request.lock_first = !isolate;
    const WaitIdentity who = {request.key.name_hash, request.holder, request.role, request.priority};
    request.since = wait_us > 0 ? waiting_since(who, GetCurrentTimestamp()) : GetCurrentTimestamp();
    Registration reg = {false, 0};
    AcquireResult result;
    for (;;) {
        request.now = GetCurrentTimestamp();
        result = attempt(request, isolate);
        if (result.acquired || wait_us == 0) break;
        if (GetCurrentTimestamp() >= deadline) break;
        if (!reg.waiting) {
            // Register first, then look again: a release committed in between
            // is seen by that look, a later one wakes us.
            reg = register_for(&request, result.holder_priority);
            continue;
        }
        sleep_until(next_look(result, deadline));
        // (Before the next look, never between a look and the sleep.)
        require_client_connected();
    }
    // (An error instead leaves the registration to the transaction's or
    // savepoint's abort: locks of the caller's resource owner, the registry's
    // abort callback, a binding undone with its subtransaction.)
    unregister(request, reg, result.acquired);
    if (reg.waiting && !result.acquired) note_wait_ran_out(who, request.since);
    return result;
}

void put_acquire_result(FunctionCallInfo fcinfo, const AcquireResult& result) {
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    Datum values[4] = {BoolGetDatum(result.acquired), Int64GetDatum(result.token),
                       result.holder != nullptr ? CStringGetTextDatum(result.holder) : (Datum)0,
                       TimestampTzGetDatum(result.expires_at)};
    // A token is a capability: never shown to a caller who does not hold the lease.
    bool nulls[4] = {false, !result.acquired, result.holder == nullptr, !result.has_expiry};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

// A wait that reads the lease again and again needs a fresh snapshot for
// every look: REPEATABLE READ and SERIALIZABLE keep the transaction's first.
void require_read_committed(const char* fn, const char* what, const char* unseen) {
    if (IsolationUsesXactSnapshot())
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("%s: a waiting %s needs READ COMMITTED isolation", fn, what),
                        errdetail("A transaction snapshot would never see %s.", unseen)));
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(singleton_acquire);
Datum singleton_acquire(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_acquire";
    AcquireRequest request = {};
    request.key = name_arg(fcinfo, 0, fn);
    request.ttl_us = ttl_arg(fcinfo, 1, fn);
    request.holder = holder_arg(fcinfo, 2, fn);
    int64 wait_us = wait_arg(fcinfo, 3, fn);
    request.priority = PG_NARGS() > 4 ? priority_arg(fcinfo, 4, fn) : 0;
    request.bind_session = bind_session;
    if (wait_us > 0) require_read_committed(fn, "acquire", "the release");
    ApiCall call = begin_call(fcinfo, fn);
    request.role = call.caller;

    InitMaterializedSRF(fcinfo, 0);
    AcquireResult result;
    as_extension_owner(call, [&] { result = acquire_waiting(request, wait_us); });
    put_acquire_result(fcinfo, result);
    return (Datum)0;
}

PG_FUNCTION_INFO_V1(singleton_heartbeat);
Datum singleton_heartbeat(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_heartbeat";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    int64 token = token_arg(fcinfo, 1, fn);
    const Interval* ttl = nullptr;
    if (!PG_ARGISNULL(2)) ttl = micros_to_interval(ttl_arg(fcinfo, 2, fn));
    ApiCall call = begin_call(fcinfo, fn);

    TimestampTz expiry = 0;
    bool renewed = false;
    as_extension_owner(call, [&] {
        renewed = heartbeat(key, token, call.caller, ttl, GetCurrentTimestamp(), &expiry);
    });
    if (!renewed) PG_RETURN_NULL();
    PG_RETURN_TIMESTAMPTZ(expiry);
}

PG_FUNCTION_INFO_V1(singleton_release);
Datum singleton_release(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_release";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    int64 token = token_arg(fcinfo, 1, fn);
    ApiCall call = begin_call(fcinfo, fn);
    bool released = false;
    as_extension_owner(call, [&] {
        released = release(key, token, call.caller, GetCurrentTimestamp());
    });
    PG_RETURN_BOOL(released);
}

PG_FUNCTION_INFO_V1(singleton_force_release);
Datum singleton_force_release(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_force_release";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    ApiCall call = begin_call(fcinfo, fn);
    bool released = false;
    as_extension_owner(call, [&] { released = force_release(key, GetCurrentTimestamp()); });
    PG_RETURN_BOOL(released);
}

PG_FUNCTION_INFO_V1(singleton_assert);
Datum singleton_assert(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_assert";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    int64 token = token_arg(fcinfo, 1, fn);
    ApiCall call = begin_call(fcinfo, fn);
    as_extension_owner(call,
                       [&] { assert_holds(key, token, call.caller, GetCurrentTimestamp()); });
    PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(singleton_bind);
Datum singleton_bind(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_bind";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    int64 token = token_arg(fcinfo, 1, fn);
    ApiCall call = begin_call(fcinfo, fn);
    bool bound = false;
    as_extension_owner(call, [&] {
        bound = bind_to_lease(key, token, call.caller, GetCurrentTimestamp());
    });
    PG_RETURN_BOOL(bound);
}

PG_FUNCTION_INFO_V1(singleton_pause);
Datum singleton_pause(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_pause";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    const char* reason = reason_arg(fcinfo, 1, fn);
    ApiCall call = begin_call(fcinfo, fn);
    bool ended = false;
    as_extension_owner(call, [&] {
        ended = pause_lease(key, reason, call.caller, GetCurrentTimestamp());
    });
    PG_RETURN_BOOL(ended);
}

PG_FUNCTION_INFO_V1(singleton_resume);
Datum singleton_resume(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_resume";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    ApiCall call = begin_call(fcinfo, fn);
    bool resumed = false;
    as_extension_owner(call, [&] { resumed = resume_lease(key, GetCurrentTimestamp()); });
    PG_RETURN_BOOL(resumed);
}

// singleton_watch(name, token, wait): blocks up to `wait` while the lease is
// held with `token` and nobody of higher priority waits for it; returns
// 'held', 'step_down' or 'lost' (at once, when that is already so). It also
// returns 'held' as soon as the client sends its next statement.
PG_FUNCTION_INFO_V1(singleton_watch);
Datum singleton_watch(PG_FUNCTION_ARGS) {
    const char* fn = "singleton_watch";
    LeaseKey key = name_arg(fcinfo, 0, fn);
    int64 token = token_arg(fcinfo, 1, fn);
    int64 wait_us = wait_arg(fcinfo, 2, fn);
    if (wait_us > 0) require_read_committed(fn, "watch", "the lease being taken over");
    ApiCall call = begin_call(fcinfo, fn, Access::reads);
    WatchOutcome outcome = WatchOutcome::Held;
    as_extension_owner(call, [&] {
        TimestampTz deadline = GetCurrentTimestamp() + wait_us;
        if (deadline < 0 || !IS_VALID_TIMESTAMP(deadline)) deadline = END_TIMESTAMP - 1;
        register_watcher(key.name_hash);
        flush_reply_so_far();  // the client's next statement now ends the watch
        for (;;) {
            TimestampTz lease_deadline = 0;
            outcome = watch_once(key, token, call.caller, GetCurrentTimestamp(), &lease_deadline);
            if (outcome != WatchOutcome::Held || GetCurrentTimestamp() >= deadline) break;
            // The holder's next statement (a heartbeat, a release) ends the
            // watch: no cancel request needed to get the connection back.
            if (sleep_until(Min(deadline, lease_deadline), true)) break;
            require_client_connected();
        }
        unregister_watcher(key.name_hash);
    });
    const char* text = outcome == WatchOutcome::Held       ? "held"
                       : outcome == WatchOutcome::StepDown ? "step_down"
                                                           : "lost";
    PG_RETURN_TEXT_P(cstring_to_text(text));
}

// singleton_lock_state(released, paused, binding_key, bound_since,
//                      bound_timeline, expires_at, ttl, now)
PG_FUNCTION_INFO_V1(singleton_lock_state);
Datum singleton_lock_state(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(7))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("singleton_lock_state: argument \"now\" must not be NULL")));
    LeaseRow row;
    row.exists = true;
    row.released = PG_ARGISNULL(0) || PG_GETARG_BOOL(0);
    row.paused = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
    row.expires_at = PG_ARGISNULL(5) ? DT_NOBEGIN : PG_GETARG_TIMESTAMPTZ(5);
    if (!PG_ARGISNULL(6)) {
        const Interval* ttl = PG_GETARG_INTERVAL_P(6);
        row.ttl = cpp_call([&] { return interval_micros(ttl->time, ttl->day, ttl->month); })
                      .value_or(0);
    }
    bool bound = !PG_ARGISNULL(2) && !PG_ARGISNULL(3);
    StoredBinding stored = {bound, bound ? PG_GETARG_TIMESTAMPTZ(3) : 0,
                            PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4)};
    row.binding = bound ? Binding::Live : Binding::Unbound;
    if (cpp_call([&] { return needs_binding_check(row); })) {
        row.binding = observe_binding(static_cast<uint64>(PG_GETARG_INT64(2)), stored);
        if (row.binding == Binding::EndedByRestart) row.server_epoch = server_epoch();
    }
    TimestampTz now = PG_GETARG_TIMESTAMPTZ(7);
    const char* state = cpp_call([&] { return state_name(classify(row, now)); });
    PG_RETURN_TEXT_P(cstring_to_text(state));
}

}  // extern "C"
