#include "heartbeat_flush.hpp"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "access/xlog.h"
}

namespace singleton_lock {

namespace {

bool pending = false;
XLogRecPtr wal_end_after_heartbeat = InvalidXLogRecPtr;
bool restore_needed = false;
int saved_synchronous_commit = SYNCHRONOUS_COMMIT_ON;

void apply_at_commit(XactEvent event, void*) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            // Nothing else wrote WAL since the heartbeat: commit it asynchronously.
            if (pending && XactLastRecEnd == wal_end_after_heartbeat &&
                synchronous_commit > SYNCHRONOUS_COMMIT_OFF) {
                saved_synchronous_commit = synchronous_commit;
                synchronous_commit = SYNCHRONOUS_COMMIT_OFF;
                restore_needed = true;
            }
            pending = false;
            break;
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            if (restore_needed) synchronous_commit = saved_synchronous_commit;
            restore_needed = false;
            pending = false;
            break;
        default:
            break;
    }
}

}  // namespace

void skip_flush_if_sole_write(bool transaction_wrote_before) {
    if (transaction_wrote_before) return;
    pending = true;
    wal_end_after_heartbeat = XactLastRecEnd;
}

void install_heartbeat_flush_policy() { RegisterXactCallback(apply_at_commit, nullptr); }

}  // namespace singleton_lock
