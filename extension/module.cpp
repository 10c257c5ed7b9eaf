// Module registration: magic block, GUCs, and the C++ -> ereport boundary.
extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/guc.h"
}

#include <climits>

#include "guard.hpp"
#include "heartbeat_flush.hpp"
#include "plans.hpp"
#include "prepare_guard.hpp"
#include "session_binding.hpp"
#include "settings.hpp"
#include "waiter_registry.hpp"
#include "waiting.hpp"

extern "C" {
#if PG_VERSION_NUM >= 180000
PG_MODULE_MAGIC_EXT(.name = "singleton_lock", .version = SINGLETON_LOCK_VERSION);
#else
PG_MODULE_MAGIC;
#endif
void _PG_init(void);
}

namespace singleton_lock {

int max_ttl_seconds = 86400;
bool bind_session = true;
bool notify_changes = true;
int max_bound_leases = 100;

void raise_cpp_failure(const char* what) {
    ereport(ERROR,
            (errcode(ERRCODE_INTERNAL_ERROR), errmsg("singleton_lock: internal error: %s", what)));
    pg_unreachable();
}

}  // namespace singleton_lock

void _PG_init(void) {
    using namespace singleton_lock;
    DefineCustomIntVariable(
        "singleton_lock.max_ttl", "Longest lease ttl singleton_acquire and heartbeat accept.",
        "A lease whose holder hangs stays taken for up to its ttl.", &max_ttl_seconds, 86400, 1,
        INT_MAX, PGC_SUSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "singleton_lock.bind_session",
        "Ties new leases to the calling session: they are free as soon as it ends.",
        "Turn off for transaction-pooled connections; leases then end by ttl alone.", &bind_session,
        true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "singleton_lock.notify",
        "Sends NOTIFY singleton_lock, '<name>' on every change of holder and every release.",
        "PostgreSQL serializes the commits of notifying transactions; turn off when nobody "
        "LISTENs and many leases change per second.",
        &notify_changes, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "singleton_lock.max_bound_leases", "Most leases one session may be bound to at a time.",
        "Each binding takes a slot in the shared lock table.", &max_bound_leases, 100, 1, 100000,
        PGC_SUSET, 0, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("singleton_lock");
    install_commit_wakeups();
    install_heartbeat_flush_policy();
    install_binding_hooks();
    install_prepare_guard();
    install_plan_invalidation();
    install_waiter_registry();
}
