#!/usr/bin/env python3
"""A warm standby service for `singleton-lock run --warm` (docs/command.md,
"Warm standby"): it boots while standby, then waits for the one line
"leader TOKEN" on the descriptor SINGLETON_LOCK_LEADER_FD names; end of file
without that line means this instance will not lead.

    singleton-lock run --name demo --warm -- python3 examples/warm/warm_service.py [BOOT_SECONDS]

Its "leader work" is a line every second; replace boot() and serve() with yours
(pass the token to downstream writes: singleton_assert fences them).
"""
import os
import signal
import sys
import time


def boot(seconds):
    print(f"warm_service: booting ({seconds} s) while standby", file=sys.stderr, flush=True)
    time.sleep(seconds)
    return {"booted_at": time.time()}


def wait_to_lead():
    """The fencing token once this instance leads; None if it never will."""
    fd = int(os.environ["SINGLETON_LOCK_LEADER_FD"])
    with os.fdopen(fd, "r") as leader:
        line = leader.readline()  # blocks until singleton-lock writes the line (or ends)
    word, _, token = line.strip().partition(" ")
    if word != "leader" or not token.isdigit():
        return None
    return int(token)


def serve(state, token):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        print(f"warm_service: working as the leader (token {token})", flush=True)
        time.sleep(1)


def main():
    if "SINGLETON_LOCK_LEADER_FD" not in os.environ:
        sys.exit("run me under singleton-lock run --warm")
    state = boot(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    token = wait_to_lead()
    if token is None:
        print("warm_service: not leading; exiting", file=sys.stderr)
        return
    print(f"warm_service: leader with fencing token {token}", file=sys.stderr, flush=True)
    serve(state, token)


if __name__ == "__main__":
    main()
