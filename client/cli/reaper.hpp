// Ending a process tree for good. Both singleton-lock and its supervising
// process are child subreapers: a descendant whose parent dies (a daemon that
// double-forked, a setsid helper whose parent exited) is re-parented to the
// nearest of them instead of to init, so it can never leave the tree.
//
// Everything here is async-signal-safe (raw system calls, no allocation): it
// also runs in the supervising process, forked from a process that may have
// other threads.
#pragma once

#include <sys/types.h>

namespace singleton_lock::cli::reaper {

// PR_SET_CHILD_SUBREAPER for the calling process. False when the kernel refuses.
bool become_subreaper();

// Kills (SIGKILL) the process group `group` while `watched` (its leader) is not
// reaped yet, and every child of the calling process, adopted orphans
// included, and reaps them; repeats until no child is left (descendants
// adopted meanwhile are killed in the next round). *watched_status receives the
// wait status of `watched` if it is reaped here. sigchld_fd: a signalfd for
// SIGCHLD to wait on between rounds (-1: short sleeps). Returns the number of
// processes reaped.
int kill_and_reap_all(pid_t group, pid_t watched, int* watched_status, int sigchld_fd);

// Reaps every child that has ended, except `keep` (left a zombie for the caller
// to collect). Returns true when `keep` has ended.
bool reap_ended(pid_t keep);

}  // namespace singleton_lock::cli::reaper
