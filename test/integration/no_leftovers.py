#!/usr/bin/env python3
"""Runs COMMAND as a child of a child subreaper and exits with its status; exits
99 naming them when any process COMMAND started outlived it (they are adopted
by us instead of init, so none can slip away, and are killed).

    no_leftovers.py COMMAND [ARG...]
"""
import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def adopted():
    """Our children after COMMAND was reaped: its orphans, alive or zombie."""
    me, pids = os.getpid(), []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except (OSError, ValueError):
            continue  # not a process, or gone
        if int(stat[stat.rindex(")") + 2:].split()[1]) == me:
            pids.append(int(entry))
    return pids


def describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
        return f"{pid} ({b' '.join(words).decode(errors='replace').strip()})"
    except OSError:
        return str(pid)


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"no_leftovers.py: prctl: {os.strerror(ctypes.get_errno())}")
    status = subprocess.call(sys.argv[1:])
    left = adopted()
    if not left:
        sys.exit(status if status >= 0 else 128 - status)
    print("no_leftovers.py: outlived " + " ".join(sys.argv[1:2]) + ": "
          + ", ".join(describe(p) for p in left), file=sys.stderr)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    for _ in left:
        os.wait()
    sys.exit(99)


if __name__ == "__main__":
    main()
