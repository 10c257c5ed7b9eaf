// The messages between singleton-lock and its supervising process, over a
// SOCK_SEQPACKET socketpair (one message per packet, never split or merged).
// Async-signal-safe: used in the forked supervisor.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace singleton_lock::cli::link {

enum class Kind : std::int32_t {
    // singleton-lock -> supervisor
    start = 1,     // a: token, b: watchdog deadline (CLOCK_MONOTONIC ns); carries the
                   // database sockets (SCM_RIGHTS), held until every descendant is reaped
    deadline = 2,  // b: the new watchdog deadline
    stop = 3,      // value: signal for COMMAND's group now; SIGKILL to all at the grace's end
    pass_on = 4,   // value: signal for COMMAND's group (SIGHUP, ...): no stop, no grace
    // supervisor -> singleton-lock
    child = 10,  // value: pid of COMMAND's process (it leads COMMAND's process group)
    ended = 11,  // value: COMMAND's wait status; a: processes killed and reaped; b: flags
};

// Flags of `ended`.
constexpr std::int64_t killed_at_grace_end = 1;  // something was still running when the grace ended
constexpr std::int64_t watchdog_fired = 2;       // singleton-lock missed its own deadline

struct Message {
    Kind kind;
    std::int32_t value;
    std::int64_t a;
    std::int64_t b;
};

constexpr int max_sockets = 4;

// Sends one message (and descriptors, nfds <= max_sockets) without blocking.
bool send(int link, const Message& m, const int* fds = nullptr, int nfds = 0);
// Receives one message. Returns 1, 0 at EOF, -1 on error (EAGAIN: none queued).
// Whatever the peer sent before closing is returned before EOF.
// Received descriptors (close-on-exec) go to fds, their count to *nfds.
int receive(int link, Message& m, int* fds = nullptr, int* nfds = nullptr);

}  // namespace singleton_lock::cli::link
