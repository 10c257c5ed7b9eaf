#include "wait_slices.hpp"

extern "C" {
#include "miscadmin.h"
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
           std::strcmp(l.holder, who.holder) == 0;
}

bool usable(const WaitIdentity& who) {
    return who.holder != nullptr && std::strlen(who.holder) < sizeof last_wait.holder;
}

// The identity as the shared registry keeps it (waiter_registry.hpp).
Waiter registry_entry(const WaitIdentity& who, TimestampTz since) {
    Waiter w = {};
    w.name_hash = who.name_hash;
    w.database = MyDatabaseId;
    w.role = who.role;
    w.priority = who.priority;
    w.since = since;
    std::strcpy(w.holder, who.holder);
    return w;
}

}  // namespace

TimestampTz waiting_since(const WaitIdentity& who, TimestampTz now) {
    if (!usable(who)) return now;
    const bool continues = last_wait.valid && same(last_wait, who) &&
                           now >= last_wait.ended && now - last_wait.ended <= kRanOutKeptUs;
    last_wait.valid = false;  // (noted again only when this call runs out too)
    TimestampTz since = now;
    // The session's own note works when the registry had no free slot for the
    // shared one; the shared note is consumed either way (this call continues it).
    const bool shared = take_ran_out_since(registry_entry(who, now), now, &since);
    if (continues) return last_wait.since;
    return shared ? since : now;
}

void note_wait_ran_out(const WaitIdentity& who, TimestampTz since) {
    if (!usable(who)) return;
    const TimestampTz now = GetCurrentTimestamp();
    last_wait.valid = true;
    last_wait.name_hash = who.name_hash;
    last_wait.role = who.role;
    last_wait.priority = who.priority;
    last_wait.since = since;
    last_wait.ended = now;
    std::strcpy(last_wait.holder, who.holder);
    note_ran_out(registry_entry(who, since), now);
}

}  // namespace singleton_lock
