// The limit on open files (RLIMIT_NOFILE, `ulimit -n`): singleton-lock run
// makes room for the descriptors it needs before it contends, and gives COMMAND
// the limit it was started with.
#pragma once

#include <string>

namespace singleton_lock::cli::open_files {

// What singleton-lock run needs open at once: standard streams, signalfd, the
// supervising process's link, two database sockets, name lookups and a
// reconnect; the health endpoint adds its listener and up to 32 connections.
constexpr unsigned needed_without_health = 16;
constexpr unsigned needed_for_health = 34;

// Raises the soft limit to `need` when it is lower and the hard limit allows.
// Returns "" when there is room, else why not, for the log (the limit cannot be
// raised: waiting would not help, every connection attempt would fail alike).
std::string make_room(unsigned need);

// Puts back the soft limit found by make_room (COMMAND runs with the limit its
// user set, not ours). Async-signal-safe: for the vforked child before exec.
void restore_for_command();

}  // namespace singleton_lock::cli::open_files
