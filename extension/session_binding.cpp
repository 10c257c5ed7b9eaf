#include "session_binding.hpp"

extern "C" {
#include <netdb.h>
#include <sys/socket.h>
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "tcop/utility.h"
#include "utils/backend_status.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include "lock_tags.hpp"
#include "pg_compat.hpp"
#include "settings.hpp"
#include "waiting.hpp"

namespace singleton_lock {

namespace {

// This session's bindings. `bound_in` is the subtransaction that made a
// binding still in flight (its abort undoes it), kNone once the top-level
// transaction committed. `released_in` is the subtransaction of this
// session's own release of the tenure: the lock goes only if that commits.
constexpr SubTransactionId kNone = InvalidSubTransactionId;

struct BoundTenure {
    uint64 name_hash;
    uint64 key;
    SubTransactionId bound_in;
    SubTransactionId released_in;
};

BoundTenure* bindings = nullptr;
int binding_count = 0;
int binding_capacity = 0;
bool exit_hook_installed = false;

LOCKTAG tenure_tag(const BoundTenure& b) { return binding_tag(b.key); }

void drop_lock(const BoundTenure& b) {
    LOCKTAG tag = tenure_tag(b);
    if (LockHeldByMeCompat(&tag, ShareLock)) LockRelease(&tag, ShareLock, true);
}

void remove_at(int i) { bindings[i] = bindings[--binding_count]; }

int find(uint64 name_hash, uint64 key) {
    for (int i = 0; i < binding_count; i++)
        if (bindings[i].name_hash == name_hash && bindings[i].key == key) return i;
    return -1;
}

// Bindings of earlier tenures of the lease (ended: the lease has one tenure).
void drop_other_tenures(uint64 name_hash, uint64 key) {
    for (int i = binding_count - 1; i >= 0; i--)
        if (bindings[i].name_hash == name_hash && bindings[i].key != key) {
            drop_lock(bindings[i]);
            remove_at(i);
        }
}

int append_slot() {
    if (binding_count == binding_capacity) {
        int capacity = binding_capacity == 0 ? 8 : binding_capacity * 2;
        size_t bytes = capacity * sizeof(BoundTenure);
        bindings = static_cast<BoundTenure*>(
            bindings == nullptr ? MemoryContextAlloc(TopMemoryContext, bytes)
                                : repalloc(bindings, bytes));
        binding_capacity = capacity;
    }
    return binding_count++;
}

// The binding locks are gone (session exit, DISCARD ALL,
// pg_advisory_unlock_all): whoever waits for these leases looks again now.
void wake_waiters_of_all_bound() {
    for (int i = 0; i < binding_count; i++) wake_waiters_now(bindings[i].name_hash);
}

void release_bindings_at_exit(int, Datum) {
    for (int i = 0; i < binding_count; i++) drop_lock(bindings[i]);
    wake_waiters_of_all_bound();
    binding_count = 0;
}

void forget_dropped_bindings() {
    wake_waiters_of_all_bound();
    binding_count = 0;
}

void at_subtransaction_end(SubXactEvent event, SubTransactionId mine, SubTransactionId parent,
                           void*) {
    // Subtransaction ids grow: an aborting one's descendants have larger ids.
    for (int i = binding_count - 1; i >= 0; i--) {
        BoundTenure& b = bindings[i];
        if (event == SUBXACT_EVENT_ABORT_SUB) {
            if (b.released_in != kNone && b.released_in >= mine) b.released_in = kNone;
            if (b.bound_in != kNone && b.bound_in >= mine) {
                drop_lock(b);
                remove_at(i);
            }
        } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
            if (b.bound_in == mine) b.bound_in = parent;
            if (b.released_in == mine) b.released_in = parent;
        }
    }
}

void at_transaction_end(XactEvent event, void*) {
    bool commit = event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT;
    bool abort = event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT;
    if (!commit && !abort) return;
    for (int i = binding_count - 1; i >= 0; i--) {
        BoundTenure& b = bindings[i];
        bool undo = abort ? b.bound_in != kNone : b.released_in != kNone;
        if (undo) {
            drop_lock(b);
            remove_at(i);
            continue;
        }
        b.bound_in = kNone;
        b.released_in = kNone;
    }
}

ProcessUtility_hook_type previous_utility_hook = nullptr;
needs_fmgr_hook_type previous_needs_fmgr_hook = nullptr;
fmgr_hook_type previous_fmgr_hook = nullptr;

void notice_discard_all(PlannedStmt* pstmt, const char* query, bool read_only_tree,
                        ProcessUtilityContext context, ParamListInfo params,
                        QueryEnvironment* env, DestReceiver* dest, QueryCompletion* qc) {
    if (previous_utility_hook != nullptr)
        previous_utility_hook(pstmt, query, read_only_tree, context, params, env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
    Node* stmt = pstmt->utilityStmt;
    if (stmt != nullptr && IsA(stmt, DiscardStmt) &&
        reinterpret_cast<DiscardStmt*>(stmt)->target == DISCARD_ALL)
        forget_dropped_bindings();
}

bool wants_fmgr_hook(Oid fn_oid) {
    if (fn_oid == F_PG_ADVISORY_UNLOCK_ALL) return true;
    return previous_needs_fmgr_hook != nullptr && previous_needs_fmgr_hook(fn_oid);
}

void notice_advisory_unlock_all(FmgrHookEventType event, FmgrInfo* flinfo, Datum* arg) {
    if (flinfo->fn_oid == F_PG_ADVISORY_UNLOCK_ALL && event == FHET_END)
        forget_dropped_bindings();
    if (previous_fmgr_hook != nullptr && previous_needs_fmgr_hook != nullptr &&
        previous_needs_fmgr_hook(flinfo->fn_oid))
        previous_fmgr_hook(event, flinfo, arg);
}

// The client's address as pg_stat_activity shows it ("local" for a unix socket).
const char* client_host() {
    if (MyBEEntry == nullptr) return "local";
    if (MyBEEntry->st_clienthostname != nullptr && MyBEEntry->st_clienthostname[0] != '\0')
        return MyBEEntry->st_clienthostname;
    const SockAddr& addr = MyBEEntry->st_clientaddr;
    if (addr.salen == 0 || addr.addr.ss_family == AF_UNIX) return "local";
    char* buffer = static_cast<char*>(palloc0(NI_MAXHOST));
    if (getnameinfo(reinterpret_cast<const struct sockaddr*>(&addr.addr), addr.salen, buffer,
                    NI_MAXHOST, nullptr, 0, NI_NUMERICHOST) != 0)
        return "unknown";
    return buffer;
}

}  // namespace

uint64 new_binding_key() {
    uint64 key = 0;
    while (key == 0)
        if (!pg_strong_random(&key, sizeof key))
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                            errmsg("could not generate a random binding key")));
    return key;
}

void bind_this_session(uint64 name_hash, uint64 key, bool tenure_is_current) {
    if (tenure_is_current) drop_other_tenures(name_hash, key);
    int i = find(name_hash, key);
    if (i >= 0) {
        bindings[i].released_in = kNone;  // bound again after a release in this transaction
        return;
    }
    if (binding_count >= max_bound_leases)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("this session is already bound to %d leases", binding_count),
                 errhint("Raise singleton_lock.max_bound_leases, or turn "
                         "singleton_lock.bind_session off for this role.")));
    BoundTenure fresh = {name_hash, key, GetCurrentSubTransactionId(), kNone};
    LOCKTAG tag = tenure_tag(fresh);
    (void)LockAcquire(&tag, ShareLock, true, false);
    int slot = append_slot();  // (may move `bindings`)
    bindings[slot] = fresh;
    if (!exit_hook_installed) {
        before_shmem_exit(release_bindings_at_exit, 0);
        exit_hook_installed = true;
    }
}

void unbind_this_session(uint64 name_hash, uint64 key) {
    int i = find(name_hash, key);
    if (i >= 0) bindings[i].released_in = GetCurrentSubTransactionId();
}

void unbind_now(uint64 name_hash, uint64 key) {
    int i = find(name_hash, key);
    if (i < 0) return;
    drop_lock(bindings[i]);
    remove_at(i);
}

Binding observe_binding(uint64 key, const StoredBinding& stored) {
    if (!stored.bound) return Binding::Unbound;
    LOCKTAG tag = binding_tag(key);
    if (LockHeldByMeCompat(&tag, ShareLock)) return Binding::Live;
    if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
        return Binding::Live;
    LockRelease(&tag, ExclusiveLock, false);
    if (static_cast<TimeLineID>(stored.timeline) < current_timeline())
        return Binding::EndedByFailover;
    if (stored.bound_since < server_epoch()) return Binding::EndedByRestart;
    return Binding::Ended;
}

TimestampTz server_epoch() {
    static TimestampTz epoch = 0;
    if (epoch != 0) return epoch;
    TimestampTz found = PgStartTime;
    int n = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= n; i++) {
        LocalPgBackendStatus* entry = local_backend_status(i);
        if (entry != nullptr && entry->backendStatus.st_backendType == B_CHECKPOINTER &&
            entry->backendStatus.st_proc_start_timestamp > found)
            found = entry->backendStatus.st_proc_start_timestamp;
    }
    epoch = found;
    return epoch;
}

TimeLineID current_timeline() {
    if (!RecoveryInProgress()) return GetWALInsertionTimeLine();
    TimeLineID replayed = 0;
    (void)GetXLogReplayRecPtr(&replayed);
    return replayed;
}

TimestampTz own_session_start() { return MyStartTimestamp; }

void install_binding_hooks() {
    RegisterSubXactCallback(at_subtransaction_end, nullptr);
    RegisterXactCallback(at_transaction_end, nullptr);
    previous_utility_hook = ProcessUtility_hook;
    ProcessUtility_hook = notice_discard_all;
    previous_needs_fmgr_hook = needs_fmgr_hook;
    previous_fmgr_hook = fmgr_hook;
    needs_fmgr_hook = wants_fmgr_hook;
    fmgr_hook = notice_advisory_unlock_all;
}

const char* default_holder() {
    static char* holder = nullptr;
    if (holder != nullptr) return holder;
    uint32 nonce = 0;
    if (!pg_strong_random(&nonce, sizeof nonce))
        ereport(ERROR,
                (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate a random holder id")));
    const char* app =
        application_name != nullptr && application_name[0] != '\0' ? application_name : "session";
    const char* host = client_host();
    // Bytes bound the length in characters too: at most 64 + 64 + 24 < 255.
    holder = MemoryContextStrdup(TopMemoryContext,
                                 psprintf("%.64s@%.64s:%d:%08x", app, host, MyProcPid, nonce));
    return holder;
}

}  // namespace singleton_lock
