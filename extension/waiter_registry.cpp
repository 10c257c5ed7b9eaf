#include "waiter_registry.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
}

namespace singleton_lock {

namespace {

struct Slot {
    bool in_use;
    Waiter waiter;
};

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
        SpinLockInit(&shared->mutex);
        for (Slot& s : shared->slots) s.in_use = false;
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
    SpinLockAcquire(&r->mutex);
    for (int i = 0; i < kRegistrySlots; i++) {
        Slot& s = r->slots[i];
        if (s.in_use && alive(s.waiter)) continue;
        s.waiter = me;
        s.in_use = true;
        my_slot = i;
        registered_in = GetCurrentSubTransactionId();
        break;
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

void install_waiter_registry() {
    if (process_shared_preload_libraries_in_progress) {
        previous_request_hook = shmem_request_hook;
        shmem_request_hook = request_space;
    }
    RegisterXactCallback(clear_at_abort, nullptr);
    RegisterSubXactCallback(clear_at_subabort, nullptr);
}

}  // namespace singleton_lock
