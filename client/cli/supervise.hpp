// The supervising process (forked by Supervisor::prepare): COMMAND's parent, a
// child subreaper, and the holder of duplicates of the database sockets while
// COMMAND runs. It ends every descendant of COMMAND, reaps them all, and only
// then lets the sockets go; see supervisor.hpp for the whole design.
//
// Runs in a forked child of a process that may have other threads:
// async-signal-safe calls only, no allocation.
#pragma once

#include <cstdint>

namespace singleton_lock::cli {

// Everything COMMAND's exec needs, built before the fork. token_slot points
// into envp's SINGLETON_LOCK_TOKEN=... entry (room for 20 digits).
struct CommandImage {
    const char* path;
    char* const* argv;
    char* const* envp;
    char* token_slot;
};

constexpr unsigned token_digits = 20;  // room for any int64

// link: the socket to singleton-lock. gate_r/gate_w: the socketpair on which
// COMMAND's pre-forked child waits for its token (-1: fork COMMAND at start).
[[noreturn]] void supervise(int link, int gate_r, int gate_w, const CommandImage& command,
                            std::int64_t grace_ns);

}  // namespace singleton_lock::cli
