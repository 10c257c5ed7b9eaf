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
// into envp's SINGLETON_LOCK_TOKEN=... entry (room for 20 digits); nullptr for
// a warm COMMAND (it learns its token from SINGLETON_LOCK_LEADER_FD).
struct CommandImage {
    const char* path;
    char* const* argv;
    char* const* envp;
    char* token_slot;
};

constexpr unsigned token_digits = 20;  // room for any int64

// link: the socket to singleton-lock. Cold (warm false): COMMAND is vforked
// at start with the token it brings; gate_r/gate_w are -1. warm: COMMAND is
// forked and exec'd at once, keeping gate_r (a pipe) open as
// SINGLETON_LOCK_LEADER_FD; its end, even before start, is reported.
[[noreturn]] void supervise(int link, int gate_r, int gate_w, const CommandImage& command,
                            std::int64_t grace_ns, bool warm);

}  // namespace singleton_lock::cli
