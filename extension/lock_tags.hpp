// Lock-manager tags of the extension. They are advisory-lock tags (user lock
// method: they survive transaction aborts when held at session level) whose
// 4th field no advisory-lock function uses (those use 1 and 2), so they never
// collide with an application's own advisory locks. pg_locks shows them as
// locktype 'advisory' with objsubid 21324 (session binding) or 21325 (waiters).
#pragma once

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "storage/lock.h"
}

namespace singleton_lock {

constexpr uint16 kSessionTagKind = 0x534C;  // "SL"
constexpr uint16 kWaiterTagKind = 0x534D;

inline LOCKTAG session_tag(int32 pid, TimestampTz started) {
    LOCKTAG tag;
    uint64 start = static_cast<uint64>(started);
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(pid),
                         static_cast<uint32>(start ^ (start >> 32)), kSessionTagKind);
    return tag;
}

inline LOCKTAG waiter_tag(uint64 name_hash) {
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(name_hash >> 32),
                         static_cast<uint32>(name_hash), kWaiterTagKind);
    return tag;
}

}  // namespace singleton_lock
