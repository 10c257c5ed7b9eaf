#!/usr/bin/env python3
"""Ours in-process in Python, set beside the peer libraries in the handover
benchmark (handover.py, "py"): the Python library's run_as_leader with its
defaults (asyncio, psycopg).

  peer_python.py DSN NAME EVENTS TAG

main() appends "start TAG NS PID PGID TOKEN 0" to EVENTS when it starts (NS:
CLOCK_MONOTONIC, as time.monotonic_ns()), and "exit TAG NS" when it is
cancelled: SIGTERM cancels it, then the lease is released, handing it to the
waiter in the release's commit, and the program exits 0."""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import singleton_lock  # noqa: E402

DSN, NAME, EVENTS, TAG = sys.argv[1:5]
FD = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def stamp(line: str) -> None:
    os.write(FD, (line + "\n").encode())


async def main(lease: singleton_lock.Lease) -> None:
    stamp(f"start {TAG} {time.monotonic_ns()} {os.getpid()} {os.getpgrp()} {lease.token} 0")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        stamp(f"exit {TAG} {time.monotonic_ns()}")
        raise


asyncio.run(singleton_lock.run_as_leader(NAME, main, dsn=DSN, ttl="10s", rejoin=False))
