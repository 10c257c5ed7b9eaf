// The server APIs that differ between the supported PostgreSQL majors (15, 17, 18),
// so that the rest of the extension is written once against one spelling.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#if PG_VERSION_NUM >= 170000
#include "storage/procarray.h"  // ProcNumberGetProc (PostgreSQL 17 renamed BackendId)
#else
#include "storage/sinvaladt.h"  // BackendIdGetProc
#endif
}

// The extension's version, from extension/singleton_lock.control (the Makefile passes it).
#ifndef SINGLETON_LOCK_VERSION
#error "SINGLETON_LOCK_VERSION is not defined: build with the project's Makefile"
#endif

// PostgreSQL 18 records a library's name and version in its magic block
// (shown by pg_get_loaded_modules()); earlier majors have the plain block.
#if PG_VERSION_NUM >= 180000
#define SINGLETON_LOCK_MODULE_MAGIC \
    PG_MODULE_MAGIC_EXT(.name = "singleton_lock", .version = SINGLETON_LOCK_VERSION)
#else
#define SINGLETON_LOCK_MODULE_MAGIC PG_MODULE_MAGIC
#endif

namespace singleton_lock {

// Whether this backend holds the lock in exactly `mode`.
inline bool lock_held_by_me(const LOCKTAG* tag, LOCKMODE mode) {
#if PG_VERSION_NUM >= 170000
    return LockHeldByMe(tag, mode, false);
#else
    return LockHeldByMe(tag, mode);
#endif
}

// The PGPROC of the backend that runs a virtual transaction; null once it has exited.
inline PGPROC* proc_of(const VirtualTransactionId& vxid) {
#if PG_VERSION_NUM >= 170000
    return ProcNumberGetProc(vxid.procNumber);
#else
    return BackendIdGetProc(vxid.backendId);
#endif
}

}  // namespace singleton_lock
