// Every timing the client derives from the TTL and the grace, computed once
// (make_timing) and exposed by Elector::timing(), so that a program supervising
// work under the lease uses exactly the numbers the elector uses.
#pragma once

#include <optional>

#include "singleton_lock/duration.hpp"

namespace singleton_lock {

constexpr Duration min_ttl{100};

struct Timing {
    Duration ttl;
    Duration grace;               // SIGTERM -> SIGKILL for work stopped on loss
    Duration heartbeat_interval;  // ttl/3
    Duration safety_margin;       // min(ttl/10, 1s): scheduling, signal delivery, clock rates
    Duration heartbeat_retry;     // after a failed (but not refused) heartbeat
    Duration wait_slice_max;      // longest server-side wait of one acquire call
    Duration reply_slack;  // a request is given up when no reply came this long after it could have
    Duration connect_timeout;  // local bound on establishing a connection
    Duration release_timeout;  // how long a release (reconnecting if needed) may take
    // A supervising process's own deadline lies this long after the leader's
    // step-down point: it never fires first in normal operation, and its SIGKILL
    // at the end of the grace still lands before the lease's deadline.
    Duration watchdog_slack;
};

// Validates and derives. Throws UsageError: ttl below min_ttl, a negative
// grace, grace >= ttl/2. The grace defaults to ttl/4.
Timing make_timing(Duration ttl, std::optional<Duration> grace);

}  // namespace singleton_lock
