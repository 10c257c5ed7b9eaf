// Taking, renewing, binding and checking a lease (the holder's side).
// Releases, pauses and handoffs are in handover.cpp.
#include "lease_store.hpp"

extern "C" {
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
}

#include "call_context.hpp"
#include "fence_queue.hpp"
#include "guard.hpp"
#include "heartbeat_flush.hpp"
#include "prepare_guard.hpp"
#include "stored_lease.hpp"
#include "waiter_registry.hpp"

namespace singleton_lock {

namespace {

AcquireResult refused(const StoredLease& stored, const LeaseRow& row, Oid caller, bool locked) {
    AcquireResult result = {};
    result.acquired = false;
    // Nobody holds a paused lease, nor one left to a better waiter.
    if (!stored.paused && !stored.released) result.holder = holder_as_seen_by(stored, caller);
    result.paused = stored.paused;
    // A paused lease has no expiry to wake up at: only a resume ends it.
    result.has_expiry = stored.has_expiry && !stored.paused;
    result.expires_at = cpp_call([&] { return lease_deadline(row); });
    result.refused_while_locked = locked;
    result.holder_priority = stored.priority;
    return result;
}

AcquireResult granted(const AcquireRequest& request, int64 token, TimestampTz expires_at) {
    AcquireResult result = {};
    result.acquired = true;
    result.token = token;
    result.has_expiry = true;
    result.expires_at = expires_at;
    result.holder = copy_out(request.holder);
    forbid_prepare("singleton_acquire");
    return result;
}

AcquireDecision decide(const LeaseRow& row, const AcquireRequest& request) {
    Caller caller{request.holder, request.role};
    return cpp_call([&] { return decide_acquire(row, caller, request.now); });
}

// A release handed the lease to this waiter: its tenure carries the key this
// session already holds. Nothing to write: the waiter's commit is free.
bool handed_to_me(const StoredLease& stored, const AcquireDecision& d, const AcquireRequest& r) {
    return d.outcome == AcquireOutcome::Renew && r.prebound_key != 0 &&
           stored.binding_key == r.prebound_key;
}

// Among waiters the best (priority, then the longest waiting) gets a free
// lease: a caller outranked by a live waiter leaves it to that one, which
// is woken by the same event and takes it itself.
bool must_yield(const AcquireRequest& r) {
    return outranked(r.key.name_hash, r.priority, r.since, MyProcPid);
}

// Locks the row (creating it if need be) unless a plain read already decides
// (see AcquireRequest::lock_first). Returns false with *early filled in.
bool lock_row_or_decide(const AcquireRequest& request, StoredLease* stored, AcquireResult* early) {
    *stored = load(request.key, request.lock_first ? kLoadForUpdate : kLoad);
    if (request.lock_first && stored->exists) return true;
    if (!stored->exists) {
        Datum args[1] = {PointerGetDatum(request.key.name)};
        run(kInsertIfMissing, args, nullptr, SPI_OK_INSERT);
    } else {
        LeaseRow row = rule_row(*stored);
        AcquireDecision d = decide(row, request);
        if (handed_to_me(*stored, d, request)) {
            *early = granted(request, stored->token, stored->expires_at);
            return false;
        }
        if (d.outcome == AcquireOutcome::Refuse) {
            *early = refused(*stored, row, request.role, false);
            return false;
        }
    }
    *stored = load(request.key, kLoadForUpdate);  // the newest version, locked
    if (!stored->exists)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("lease \"%s\" was deleted concurrently", request.key.name_str)));
    return true;
}

AcquireResult take_new(const AcquireRequest& request, const StoredLease& stored,
                       TenureEnd previous_end, TimestampTz expires_at) {
    uint64 key = 0;
    if (request.bind_session)
        key = request.prebound_key != 0 ? request.prebound_key : new_binding_key();
    NewTenure tenure = {request.holder, request.role,  request.ttl_us,      request.priority,
                        MyProcPid,      own_session_start(), key};
    int64 token = write_new_tenure(request.key, stored.token, tenure, request.now, expires_at,
                                   previous_end);
    if (key != 0) bind_this_session(request.key.name_hash, key);
    return granted(request, token, expires_at);
}

AcquireResult renew(const AcquireRequest& request, const StoredLease& stored,
                    TimestampTz expires_at) {
    uint64 key = 0;
    if (request.bind_session) key = stored.binding_key != 0 ? stored.binding_key : new_binding_key();
    Datum args[9] = {PointerGetDatum(request.key.name),
                     TimestampTzGetDatum(request.now),
                     TimestampTzGetDatum(expires_at),
                     PointerGetDatum(micros_to_interval(request.ttl_us)),
                     Int32GetDatum(MyProcPid),
                     TimestampTzGetDatum(own_session_start()),
                     Int32GetDatum(static_cast<int32>(current_timeline())),
                     Int64GetDatum(static_cast<int64>(key)),
                     Int32GetDatum(request.priority)};
    char b = key != 0 ? ' ' : 'n';
    const char nulls[10] = {' ', ' ', ' ', ' ', b, b, b, b, ' ', '\0'};
    run(kRenew, args, nulls, SPI_OK_UPDATE);
    if (key != 0) bind_this_session(request.key.name_hash, key);
    return granted(request, stored.token, expires_at);
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
    AcquireResult early = {};
    if (!lock_row_or_decide(request, &stored, &early)) return early;
    request.now = GetCurrentTimestamp();  // the lock may have waited
    LeaseRow row = rule_row(stored);
    AcquireDecision decision = decide(row, request);
    if (handed_to_me(stored, decision, request))
        return granted(request, stored.token, stored.expires_at);
    if (decision.outcome == AcquireOutcome::Refuse)
        return refused(stored, row, request.role, true);
    if (decision.outcome == AcquireOutcome::TakeNew && must_yield(request)) {
        AcquireResult yielded = refused(stored, row, request.role, true);
        yielded.yielded = true;
        return yielded;
    }
    TimestampTz expires_at = expiry_or_error(request.now, request.ttl_us);
    require_client_connected();
    if (decision.outcome == AcquireOutcome::TakeNew)
        return take_new(request, stored, decision.previous_end, expires_at);
    return renew(request, stored, expires_at);
}

bool heartbeat(const LeaseKey& key, int64 token, Oid role, const Interval* ttl_or_null,
               TimestampTz now, TimestampTz* new_expiry) {
    Datum args[5] = {PointerGetDatum(key.name), Int64GetDatum(token), TimestampTzGetDatum(now),
                     PointerGetDatum(ttl_or_null), ObjectIdGetDatum(role)};
    const char nulls[6] = {' ', ' ', ' ', ttl_or_null != nullptr ? ' ' : 'n', ' ', '\0'};
    bool wrote_before = TransactionIdIsValid(GetTopTransactionIdIfAny());
    run(kHeartbeat, args, nulls, SPI_OK_UPDATE_RETURNING);
    if (SPI_processed == 0) return false;
    // The UPDATE may have waited for the row (a release, a force release in
    // flight): from a client gone meanwhile, the error undoes it.
    require_client_connected();
    *new_expiry = DatumGetTimestampTz(column(1));
    bool session_bound = DatumGetBool(column(2));
    // A new ttl must be durable: after a crash the lease's restart deadline
    // is counted with the stored ttl (see heartbeat_flush.hpp).
    if (session_bound && ttl_or_null == nullptr) skip_flush_if_sole_write(wrote_before);
    return true;
}

bool bind_to_lease(const LeaseKey& key, int64 token, Oid role, TimestampTz now) {
    // (Before the row lock, which itself assigns a transaction id.)
    bool wrote_before = TransactionIdIsValid(GetTopTransactionIdIfAny());
    StoredLease stored = load_own(key, token, role, kLoadOwnForKeyShare);
    if (!stored.exists || state_of(stored, now) != LeaseState::Held) return false;
    require_client_connected();
    uint64 binding = stored.binding_key != 0 ? stored.binding_key : new_binding_key();
    bind_this_session(key.name_hash, binding);
    forbid_prepare("singleton_bind");
    TimestampTz mine = own_session_start();
    if (stored.binding.bound && stored.binding.bound_since >= mine) {
        // Only the row lock was written (it assigned a transaction id): losing
        // its commit in a crash loses nothing, so the new leader's bind does
        // not wait for a WAL flush on the way to starting COMMAND.
        skip_flush_if_sole_write(wrote_before);
        return true;
    }
    // This session is the newest bound one (the restart rule counts from it).
    Datum args[5] = {PointerGetDatum(key.name), Int32GetDatum(MyProcPid), TimestampTzGetDatum(mine),
                     Int32GetDatum(static_cast<int32>(current_timeline())),
                     Int64GetDatum(static_cast<int64>(binding))};
    // Without the flush wait: if a crash loses this write, the row names an
    // older bound session, which the restart rule treats the same way.
    run(kMarkBound, args, nullptr, SPI_OK_UPDATE);
    skip_flush_if_sole_write(wrote_before);
    return true;
}

void assert_holds(const LeaseKey& key, int64 token, Oid role, TimestampTz now) {
    join_fence(key.name_hash);  // behind a release already waiting (fence_queue.hpp)
    StoredLease stored = load_own(key, token, role, kLoadOwnForKeyShare);
    const char* detail;
    if (stored.exists) {
        LeaseState state = state_of(stored, now);
        if (state == LeaseState::Held) return;
        detail = psprintf("The lease is %s.", cpp_call([&] { return state_name(state); }));
    } else {
        stored = load(key, kLoad);
        detail = !stored.exists || stored.token == 0 ? "The lease was never taken."
                 : stored.token != token ? "Another tenure has begun since this token was issued."
                 : stored.paused         ? "The lease is paused."
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
