// Ending a tenure: release (by its holder), force release and pause (by an
// administrator), resume; and handing the lease to the best waiter inside the
// same transaction, so that a graceful handover costs one durable commit.
//
// Why a handoff is safe: the releaser holds the row lock, so no other release
// or takeover runs concurrently; the waiter's session already holds the
// binding key the new tenure is written with, so the tenure is bound to that
// session the moment the release commits. If the waiter is gone by then
// (exited, cancelled, its wait ran out), nobody holds that key and the lease
// is orphaned at once: the next waiter takes it as from any ended session.
// If the release rolls back, nothing was handed over. Unbound (pooled)
// waiters have no session to bind and are not handed leases: they take them
// with their own commit when woken.
#include "lease_store.hpp"

extern "C" {
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
}

#include "call_context.hpp"
#include "fence_queue.hpp"
#include "guard.hpp"
#include "prepare_guard.hpp"
#include "stored_lease.hpp"
#include "waiter_registry.hpp"
#include "waiting.hpp"

namespace singleton_lock {

namespace {

void free_tenure(const LeaseKey& key, TimestampTz now, TenureEnd why) {
    const char* name = cpp_call([&] { return tenure_end_name(why); });
    Datum args[3] = {PointerGetDatum(key.name), TimestampTzGetDatum(now), CStringGetTextDatum(name)};
    run(kFree, args, nullptr, SPI_OK_UPDATE);
}

// The best waiter, if it is session-bound and its session still holds its
// binding key. (When the best is an unbound waiter, nobody is handed the
// lease: woken, that waiter takes it, and lesser waiters leave it to it.)
bool live_bound_waiter(const LeaseKey& key, Waiter* out) {
    if (!best_waiter(key.name_hash, false, -1, out) || out->binding_key == 0) return false;
    StoredBinding probe = {true, out->session_start, static_cast<int32>(current_timeline())};
    return observe_binding(out->binding_key, probe) == Binding::Live;
}

// Hands the lease to the best waiter, or leaves it free. The previous
// tenure (if any) is already over in this transaction.
void hand_over_or_free(const LeaseKey& key, const StoredLease& stored, TimestampTz now,
                       TenureEnd why) {
    Waiter w;
    if (live_bound_waiter(key, &w)) {
        NewTenure tenure = {w.holder, w.role, w.ttl_us, w.priority,
                            w.pid,    w.session_start, w.binding_key};
        write_new_tenure(key, stored.token, tenure, now, expiry_or_error(now, w.ttl_us), why);
    } else if (!stored.released) {
        free_tenure(key, now, why);
    }
    announce_change(key);
}

void set_paused(const LeaseKey& key, bool paused, const char* reason, Oid role, TimestampTz now) {
    Datum args[5] = {PointerGetDatum(key.name), BoolGetDatum(paused),
                     reason != nullptr ? CStringGetTextDatum(reason) : (Datum)0,
                     ObjectIdGetDatum(role), TimestampTzGetDatum(now)};
    const char nulls[6] = {' ', ' ', reason != nullptr ? ' ' : 'n', paused ? ' ' : 'n',
                           paused ? ' ' : 'n', '\0'};
    run(kSetPaused, args, nulls, SPI_OK_UPDATE);
}

// A plain read: is `token` of `role` the lease's current tenure? Only then
// may the release queue fenced transactions behind itself.
bool is_current_tenure(const LeaseKey& key, int64 token, Oid role) {
    StoredLease now = load(key, kLoad);
    return now.exists && !now.released && !now.paused && now.token == token && now.role == role;
}

StoredLease load_or_create_locked(const LeaseKey& key) {
    Datum args[1] = {PointerGetDatum(key.name)};
    run(kInsertIfMissing, args, nullptr, SPI_OK_INSERT);
    return load(key, kLoadForUpdate);
}

}  // namespace

bool release(const LeaseKey& key, int64 token, Oid role, TimestampTz now) {
    if (!is_current_tenure(key, token, role)) return false;
    close_fence(key.name_hash);
    StoredLease stored = load_own(key, token, role, kLoadOwnForUpdate);
    if (!stored.exists || state_of(stored, now) != LeaseState::Held) {
        reopen_fence(key.name_hash);  // another tenure began meanwhile: not ours to hold back
        return false;
    }
    require_client_connected();  // (after the waits: a call whose client gave up acts on nothing)
    stored.released = false;
    hand_over_or_free(key, stored, now, TenureEnd::Released);
    unbind_this_session(key.name_hash, stored.binding_key);
    forbid_prepare("singleton_release");
    return true;
}

bool force_release(const LeaseKey& key, TimestampTz now) {
    close_fence(key.name_hash);
    StoredLease stored = load(key, kLoadForUpdate);
    if (!stored.exists || stored.released) return false;
    require_client_connected();
    free_tenure(key, now, TenureEnd::Forced);
    announce_change(key);
    unbind_this_session(key.name_hash, stored.binding_key);
    forbid_prepare("singleton_force_release");
    return true;
}

bool pause_lease(const LeaseKey& key, const char* reason, Oid role, TimestampTz now) {
    close_fence(key.name_hash);
    StoredLease stored = load_or_create_locked(key);
    require_client_connected();
    bool ended = !stored.released;
    if (ended) free_tenure(key, now, TenureEnd::Paused);
    set_paused(key, true, reason, role, now);
    announce_change(key);  // the holder's watch reports the loss at once
    forbid_prepare("singleton_pause");
    return ended;
}

bool resume_lease(const LeaseKey& key, TimestampTz now) {
    StoredLease stored = load(key, kLoadForUpdate);
    if (!stored.exists || !stored.paused) return false;
    require_client_connected();
    set_paused(key, false, nullptr, InvalidOid, now);
    stored.paused = false;
    stored.released = true;  // pausing ended any tenure
    hand_over_or_free(key, stored, now, TenureEnd::Paused);
    forbid_prepare("singleton_resume");
    return true;
}

WatchOutcome watch_once(const LeaseKey& key, int64 token, Oid role, TimestampTz now,
                        TimestampTz* deadline) {
    StoredLease stored = load(key, kLoad);
    LeaseRow row = rule_row(stored);
    if (!cpp_call([&] { return token_authorizes(row, token, role, now); }))
        return WatchOutcome::Lost;
    int32 best = 0;
    if (highest_waiting_priority(key.name_hash, &best) && best > stored.priority)
        return WatchOutcome::StepDown;
    *deadline = cpp_call([&] { return lease_deadline(row); });
    return WatchOutcome::Held;
}

}  // namespace singleton_lock
