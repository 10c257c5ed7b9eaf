// The few PostgreSQL APIs that differ between the supported majors (15, 17, 18).
#pragma once

extern "C" {
#include "postgres.h"
#include "storage/lock.h"
#include "storage/proc.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"  // VARDATA_ANY, VARSIZE_ANY_EXHDR: no longer in postgres.h since 16
#endif
#if PG_VERSION_NUM >= 170000
#include "storage/procarray.h"  // ProcNumberGetProc
#else
#include "storage/sinvaladt.h"  // BackendIdGetProc
#endif
#include "utils/backend_status.h"
}

namespace singleton_lock {

inline bool LockHeldByMeCompat(const LOCKTAG* tag, LOCKMODE mode) {
#if PG_VERSION_NUM >= 170000
    return LockHeldByMe(tag, mode, false);
#else
    return LockHeldByMe(tag, mode);
#endif
}

// 1-based index into this transaction's snapshot of backend status entries.
inline LocalPgBackendStatus* local_backend_status(int index) {
#if PG_VERSION_NUM >= 160000
    return pgstat_get_local_beentry_by_index(index);
#else
    return pgstat_fetch_stat_local_beentry(index);
#endif
}

inline PGPROC* proc_of(const VirtualTransactionId& vxid) {
#if PG_VERSION_NUM >= 170000
    return ProcNumberGetProc(vxid.procNumber);
#else
    return BackendIdGetProc(vxid.backendId);
#endif
}

}  // namespace singleton_lock
