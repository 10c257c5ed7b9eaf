// Lock-manager tags of the extension. They are advisory-lock tags (user lock
// method: held at session level they survive transaction aborts) whose 4th
// field no advisory-lock function uses (those use 1 and 2), so they never
// collide with an application's own advisory locks. pg_locks shows them as
// locktype 'advisory' with objsubid 21324 (tenure bindings), 21325 (waiters),
// 21326 (holders watching for a step-down request) or 21327 (fenced
// transactions and the calls that end a tenure, in one queue).
#pragma once

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "storage/lock.h"
}

namespace singleton_lock {

constexpr uint16 kBindingTagKind = 0x534C;  // "SL"
constexpr uint16 kWaiterTagKind = 0x534D;
constexpr uint16 kWatcherTagKind = 0x534E;
constexpr uint16 kFenceTagKind = 0x534F;

// Held in share mode, at session level, by every session bound to a tenure.
inline LOCKTAG binding_tag(uint64 binding_key) {
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(binding_key >> 32),
                         static_cast<uint32>(binding_key), kBindingTagKind);
    return tag;
}

// Held in share mode, for the transaction, by every session waiting for a lease.
inline LOCKTAG waiter_tag(uint64 name_hash, uint16 kind = kWaiterTagKind) {
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(name_hash >> 32),
                         static_cast<uint32>(name_hash), kind);
    return tag;
}

// Share mode: a fenced transaction; exclusive: a call ending the tenure
// (fence_queue.hpp). Per name, for the transaction.
inline LOCKTAG fence_tag(uint64 name_hash) { return waiter_tag(name_hash, kFenceTagKind); }

}  // namespace singleton_lock
