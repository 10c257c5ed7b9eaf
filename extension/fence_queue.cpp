#include "fence_queue.hpp"

#include "lock_tags.hpp"

namespace singleton_lock {

void join_fence(uint64 name_hash) {
    LOCKTAG tag = fence_tag(name_hash);
    (void)LockAcquire(&tag, ShareLock, false, false);
}

void close_fence(uint64 name_hash) {
    LOCKTAG tag = fence_tag(name_hash);
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
}

void reopen_fence(uint64 name_hash) {
    LOCKTAG tag = fence_tag(name_hash);
    (void)LockRelease(&tag, ExclusiveLock, false);
}

}  // namespace singleton_lock
