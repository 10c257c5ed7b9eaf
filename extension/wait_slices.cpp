#include "wait_slices.hpp"

extern "C" {
#include "utils/timestamp.h"
}

#include <cstring>

#include "waiter_registry.hpp"

namespace singleton_lock {

namespace {

// This session's last waiting call that ran out (backend-local: a slice is
// only ever continued by the same session).
struct LastWait {
    bool valid;
    uint64 name_hash;
    Oid role;
    int32 priority;
    TimestampTz since;
    TimestampTz ended;
    char holder[kMaxHolderBytes];
};
LastWait last_wait = {};

bool same(const LastWait& l, const WaitIdentity& who) {
    return l.name_hash == who.name_hash && l.role == who.role && l.priority == who.priority &&
           who.holder != nullptr && std::strcmp(l.holder, who.holder) == 0;
}

}  // namespace

TimestampTz waiting_since(const WaitIdentity& who, TimestampTz now) {
    const bool continues = last_wait.valid && same(last_wait, who) &&
                           now >= last_wait.ended && now - last_wait.ended <= kSliceGapUs;
    last_wait.valid = false;  // (noted again only when this call runs out too)
    return continues ? last_wait.since : now;
}

void note_wait_ran_out(const WaitIdentity& who, TimestampTz since) {
    if (who.holder == nullptr || std::strlen(who.holder) >= sizeof last_wait.holder) return;
    last_wait.valid = true;
    last_wait.name_hash = who.name_hash;
    last_wait.role = who.role;
    last_wait.priority = who.priority;
    last_wait.since = since;
    last_wait.ended = GetCurrentTimestamp();
    std::strcpy(last_wait.holder, who.holder);
}

}  // namespace singleton_lock
