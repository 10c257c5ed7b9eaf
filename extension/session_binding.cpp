#include "session_binding.hpp"

extern "C" {
#include <netdb.h>
#include <sys/socket.h>
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/backend_status.h"
#include "storage/lock.h"
#include "utils/guc.h"
#include "utils/memutils.h"
}

#include "guard.hpp"
#include "lock_tags.hpp"
#include "pg_compat.hpp"
#include "name_hash_list.hpp"
#include "waiting.hpp"

namespace singleton_lock {

namespace {

// Names this session has bound, so that its exit wakes their waiters. A name
// whose lease has since moved elsewhere only costs its waiters a spurious,
// harmless wake-up.
NameHashList bound_names;
bool exit_hook_installed = false;

// Runs while this backend exits (client gone, pg_terminate_backend, ...):
// drop the binding lock first, so a woken waiter already sees this session as
// gone, then wake the waiters of every lease it bound.
void release_bindings_at_exit(int, Datum) {
    LOCKTAG tag = session_tag(MyProcPid, MyStartTimestamp);
    if (lock_held_by_me(&tag, ExclusiveLock)) LockRelease(&tag, ExclusiveLock, true);
    for (int i = 0; i < bound_names.size(); i++) wake_waiters_now(bound_names[i]);
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

SessionId own_session() { return SessionId{MyProcPid, MyStartTimestamp}; }

void bind_lease_to_this_session(uint64 name_hash) {
    LOCKTAG tag = session_tag(MyProcPid, MyStartTimestamp);
    // Checked every time: pg_advisory_unlock_all() or DISCARD ALL drop it too.
    if (!lock_held_by_me(&tag, ExclusiveLock)) LockAcquire(&tag, ExclusiveLock, true, false);
    if (!exit_hook_installed) {
        before_shmem_exit(release_bindings_at_exit, 0);
        exit_hook_installed = true;
    }
    if (!bound_names.contains(name_hash)) bound_names.append(name_hash);
}

bool session_alive(int32 pid, TimestampTz started) {
    if (pid == MyProcPid && started == MyStartTimestamp) {
        LOCKTAG own = session_tag(pid, started);
        return lock_held_by_me(&own, ExclusiveLock);
    }
    LOCKTAG tag = session_tag(pid, started);
    if (LockAcquire(&tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL) return true;
    LockRelease(&tag, ShareLock, false);
    return false;
}

void observe_bound_session(LeaseRow& row, int32 pid, TimestampTz started) {
    bool check = cpp_call([&] { return needs_liveness_check(row); });
    row.bound_session_alive = check && session_alive(pid, started);
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
