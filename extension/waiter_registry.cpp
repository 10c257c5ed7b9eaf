#include "waiter_registry.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
}

#include <cstring>

namespace singleton_lock {

namespace {

// The layout is fixed: backends of an older build of the library (after an
// upgrade, before the server restarts) share this segment, and PostgreSQL
// refuses to attach a structure of another size. So a free slot that keeps a
// waiting call that ran out without the lease (take_ran_out_since) says so in
// existing fields: pid 0 and session_start = when it ran out.
struct Slot {
    bool in_use;
    Waiter waiter;
};

TimestampTz ran_out_at(const Slot& s) {
    return !s.in_use && s.waiter.pid == 0 ? s.waiter.session_start : 0;
}

void keep_ran_out(Slot& s, const Waiter& who, TimestampTz now) {
    s.in_use = false;
    s.waiter = who;
    s.waiter.pid = 0;
    s.waiter.proc = nullptr;
    s.waiter.session_start = now;
}

struct Registry {
    slock_t mutex;
    Slot slots[kRegistrySlots];
};

Registry* registry = nullptr;
int my_slot = -1;
SubTransactionId registered_in = InvalidSubTransactionId;
bool exit_hook_installed = false;
shmem_request_hook_type previous_request_hook = nullptr;

Registry* attach() {
    if (registry != nullptr) return registry;
    bool found = false;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    Registry* shared =
        static_cast<Registry*>(ShmemInitStruct("singleton_lock waiters", sizeof(Registry), &found));
    if (!found) {
        MemSet(shared, 0, sizeof(Registry));
        SpinLockInit(&shared->mutex);
    }
    LWLockRelease(AddinShmemInitLock);
    registry = shared;
    return registry;
}

bool ranks_before(const Waiter& a, const Waiter& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    return a.since < b.since;
}

// A slot stays valid only while its backend is the one that registered it.
bool alive(const Waiter& w) { return w.proc != nullptr && w.proc->pid == w.pid; }

bool mine(const Slot& s, uint64 name_hash) {
    return s.in_use && s.waiter.name_hash == name_hash && s.waiter.database == MyDatabaseId &&
           alive(s.waiter);
}

void clear_my_slot() {
    if (my_slot < 0 || registry == nullptr) return;
    SpinLockAcquire(&registry->mutex);
    registry->slots[my_slot].in_use = false;
    SpinLockRelease(&registry->mutex);
    my_slot = -1;
}

void clear_at_exit(int, Datum) { clear_my_slot(); }

// A wait that ends in an error ends its registration too.
void clear_at_abort(XactEvent event, void*) {
    if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) clear_my_slot();
}
// (Subtransaction ids grow: an aborting one's descendants have larger ids;
// our own attempt subtransactions, rolled back after a lost race, are younger
// than the registration and leave it alone.)
void clear_at_subabort(SubXactEvent event, SubTransactionId mine, SubTransactionId parent, void*) {
    if (my_slot < 0) return;
    if (event == SUBXACT_EVENT_ABORT_SUB && mine <= registered_in) clear_my_slot();
    if (event == SUBXACT_EVENT_COMMIT_SUB && mine == registered_in) registered_in = parent;
}

void request_space() {
    if (previous_request_hook != nullptr) previous_request_hook();
    RequestAddinShmemSpace(MAXALIGN(sizeof(Registry)));
}

}  // namespace

bool register_this_waiter(const Waiter& me) {
    Registry* r = attach();
    clear_my_slot();
    const TimestampTz recent = GetCurrentTimestamp() - kRanOutKeptUs;
    SpinLockAcquire(&r->mutex);
    // A free slot, one that keeps no recent ran-out slice if there is such a slot.
    int chosen = -1;
    for (int i = 0; i < kRegistrySlots; i++) {
        const Slot& s = r->slots[i];
        if (s.in_use && alive(s.waiter)) continue;
        if (chosen < 0 || ran_out_at(s) < recent) chosen = i;
        if (ran_out_at(s) < recent) break;
    }
    if (chosen >= 0) {
        Slot& s = r->slots[chosen];
        s.waiter = me;
        s.in_use = true;
        my_slot = chosen;
        registered_in = GetCurrentSubTransactionId();
    }
    SpinLockRelease(&r->mutex);
    if (my_slot >= 0 && !exit_hook_installed) {
        before_shmem_exit(clear_at_exit, 0);
        exit_hook_installed = true;
    }
    return my_slot >= 0;
}

void unregister_this_waiter() { clear_my_slot(); }

bool best_waiter(uint64 name_hash, bool bound_only, int32 except_pid, Waiter* out) {
    Registry* r = attach();
    int best = -1;
    SpinLockAcquire(&r->mutex);
    for (int i = 0; i < kRegistrySlots; i++) {
        const Slot& s = r->slots[i];
        if (!mine(s, name_hash) || s.waiter.pid == except_pid) continue;
        if (bound_only && s.waiter.binding_key == 0) continue;
        if (best < 0 || ranks_before(s.waiter, r->slots[best].waiter)) best = i;
    }
    if (best >= 0) *out = r->slots[best].waiter;
    SpinLockRelease(&r->mutex);
    return best >= 0;
}

bool outranked(uint64 name_hash, int32 priority, TimestampTz since, int32 except_pid) {
    Registry* r = attach();
    Waiter me = {};
    me.priority = priority;
    me.since = since;
    bool found = false;
    SpinLockAcquire(&r->mutex);
    for (const Slot& s : r->slots)
        if (mine(s, name_hash) && s.waiter.pid != except_pid && ranks_before(s.waiter, me)) {
            found = true;
            break;
        }
    SpinLockRelease(&r->mutex);
    return found;
}

bool highest_waiting_priority(uint64 name_hash, int32* priority) {
    Registry* r = attach();
    bool found = false;
    SpinLockAcquire(&r->mutex);
    for (const Slot& s : r->slots)
        if (mine(s, name_hash) && (!found || s.waiter.priority > *priority)) {
            *priority = s.waiter.priority;
            found = true;
        }
    SpinLockRelease(&r->mutex);
    return found;
}

namespace {
bool same_waiter(const Waiter& a, const Waiter& b) {
    return a.name_hash == b.name_hash && a.database == b.database && a.role == b.role &&
           a.priority == b.priority && std::strcmp(a.holder, b.holder) == 0;
}
}  // namespace

void note_ran_out(const Waiter& who, TimestampTz now) {
    Registry* r = attach();
    const TimestampTz recent = now - kRanOutKeptUs;
    SpinLockAcquire(&r->mutex);
    int chosen = -1;
    for (int i = 0; i < kRegistrySlots; i++) {
        const Slot& s = r->slots[i];
        if (s.in_use && alive(s.waiter)) continue;
        if (ran_out_at(s) != 0 && same_waiter(s.waiter, who)) {  // an older note of it
            chosen = i;
            break;
        }
        if (chosen < 0 && ran_out_at(s) < recent) chosen = i;  // never another's recent note
    }
    if (chosen >= 0) keep_ran_out(r->slots[chosen], who, now);
    SpinLockRelease(&r->mutex);
}

bool take_ran_out_since(const Waiter& who, TimestampTz now, TimestampTz* since) {
    Registry* r = attach();
    bool found = false;
    SpinLockAcquire(&r->mutex);
    for (Slot& s : r->slots) {
        const TimestampTz ran_out = ran_out_at(s);
        if (ran_out == 0 || now < ran_out || now - ran_out > kRanOutKeptUs ||
            !same_waiter(s.waiter, who))
            continue;
        *since = s.waiter.since;
        s.waiter.session_start = 0;  // consumed
        found = true;
        break;
    }
    SpinLockRelease(&r->mutex);
    return found;
}

void install_waiter_registry() {
    if (process_shared_preload_libraries_in_progress) {
        previous_request_hook = shmem_request_hook;
        shmem_request_hook = request_space;
    }
    RegisterXactCallback(clear_at_abort, nullptr);
    RegisterSubXactCallback(clear_at_subabort, nullptr);
}

}  // namespace singleton_lock
