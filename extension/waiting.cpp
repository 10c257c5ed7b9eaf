#include "waiting.hpp"

extern "C" {
#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/sinvaladt.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include "client_socket.hpp"
#include "lock_tags.hpp"
#include "pg_compat.hpp"
#include "name_hash_list.hpp"

namespace singleton_lock {

namespace {

constexpr uint64 kNameHashSeed = 0x73696e676c65746fULL;

// Names released by the current transaction, woken when it commits.
NameHashList pending_wakes;

void wake_pending_at_commit(XactEvent event, void*) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
            for (int i = 0; i < pending_wakes.size(); i++) wake_waiters_now(pending_wakes[i]);
            pending_wakes.clear();
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:  // (refused by prepare_guard before it gets here)
            pending_wakes.clear();
            break;
        default:
            break;
    }
}

}  // namespace

uint64 lease_name_hash(const char* name, int len) {
    return hash_bytes_extended(reinterpret_cast<const unsigned char*>(name), len, kNameHashSeed);
}

void register_waiter(uint64 name_hash) {
    LOCKTAG tag = waiter_tag(name_hash);
    LockAcquire(&tag, ShareLock, false, false);
}

void unregister_waiter(uint64 name_hash) {
    LOCKTAG tag = waiter_tag(name_hash);
    LockRelease(&tag, ShareLock, false);
}

void register_watcher(uint64 name_hash) {
    LOCKTAG tag = waiter_tag(name_hash, kWatcherTagKind);
    LockAcquire(&tag, ShareLock, false, false);
}

void unregister_watcher(uint64 name_hash) {
    LOCKTAG tag = waiter_tag(name_hash, kWatcherTagKind);
    LockRelease(&tag, ShareLock, false);
}

bool sleep_until(TimestampTz until, bool wake_on_client_input) {
    TimestampTz now = GetCurrentTimestamp();
    bool input = false;
    if (until > now) {
        int64 remaining_ms = (until - now + 999) / 1000;
        long timeout_ms = remaining_ms > INT_MAX ? INT_MAX : static_cast<long>(remaining_ms);
        // Also wake when the client goes away: a waiting session whose client
        // was killed must end at once (a holder's watch would otherwise keep
        // its lease bound, a waiter its registration, until the wait ran out).
        pgsocket sock = client_socket();
        int events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
        if (sock != PGINVALID_SOCKET) events |= WL_SOCKET_CLOSED;
        if (sock != PGINVALID_SOCKET && wake_on_client_input) events |= WL_SOCKET_READABLE;
        int rc = WaitLatchOrSocket(MyLatch, events, sock, timeout_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        if (rc & WL_SOCKET_CLOSED)
            ereport(FATAL, (errcode(ERRCODE_CONNECTION_FAILURE),
                            errmsg("singleton_lock: the client disconnected while waiting")));
        input = (rc & WL_SOCKET_READABLE) != 0;
    }
    CHECK_FOR_INTERRUPTS();
    return input;
}

namespace {
void wake_holders_of(LOCKTAG tag) {
    VirtualTransactionId* sleepers = GetLockConflicts(&tag, ExclusiveLock, nullptr);
    for (; VirtualTransactionIdIsValid(*sleepers); sleepers++) {
        PGPROC* proc = proc_of(*sleepers);
        if (proc != nullptr) SetLatch(&proc->procLatch);
    }
}
}  // namespace

void wake_waiters_now(uint64 name_hash) {
    wake_holders_of(waiter_tag(name_hash));
    wake_holders_of(waiter_tag(name_hash, kWatcherTagKind));
}

void wake_watchers_now(uint64 name_hash) { wake_holders_of(waiter_tag(name_hash, kWatcherTagKind)); }

void wake_waiters_at_commit(uint64 name_hash) { pending_wakes.append(name_hash); }

void install_commit_wakeups() { RegisterXactCallback(wake_pending_at_commit, nullptr); }

}  // namespace singleton_lock
