#include "prepare_guard.hpp"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
}

namespace singleton_lock {

namespace {

const char* forbidden_by = nullptr;  // a string literal: what the transaction did

void check_at_prepare(XactEvent event, void*) {
    if (event == XACT_EVENT_PRE_PREPARE && forbidden_by != nullptr) {
        const char* what = forbidden_by;
        forbidden_by = nullptr;
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("cannot PREPARE a transaction that called %s", what),
                        errdetail("Waiters and session bindings of a lease are handled by the "
                                  "session that commits.")));
    }
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
        event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
        event == XACT_EVENT_PREPARE)
        forbidden_by = nullptr;
}

}  // namespace

void forbid_prepare(const char* what) { forbidden_by = what; }

void install_prepare_guard() { RegisterXactCallback(check_at_prepare, nullptr); }

}  // namespace singleton_lock
