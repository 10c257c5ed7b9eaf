"""Scenarios run against both example programs (examples/python/bot.py and
examples/node/worker.js): they share the command line and the ledger."""

from __future__ import annotations

import signal
import time
from typing import Callable, List

from harness import (Instance, WAIT, check_ledger, first_leader, ledger, lease_state, ms,
                     tcp_dsn, unique, wait_rows)

Spawn = Callable[[List[str], str], Instance]


def command(program: List[str], name: str, table: str, ttl: str, dsn: str = "") -> List[str]:
    return program + ["--dsn", dsn or tcp_dsn(), "--name", name, "--ledger", table, "--ttl", ttl]


def two_copies_handover(spawn: Spawn, program: List[str], what: str) -> None:
    """Leader + standby; SIGTERM to the leader hands over in milliseconds; exactly
    one writes at a time; both exit 0 on SIGTERM."""
    name, table = unique("two"), unique("ledger")
    cmd = command(program, name, table, "5s")
    a = spawn(cmd, "a")
    got_a = a.next_leader()
    assert got_a, "the first instance never led"
    b = spawn(cmd, "b")
    assert b.wait_stderr("standby"), "the second instance never reported standby"
    assert wait_rows(table, got_a[1], 5), "the leader does not write its ledger"
    assert b.lines.empty(), "the standby printed a leader line while the leader held the lease"
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    got_b = b.next_leader()
    assert got_b, "the standby did not take over after SIGTERM to the leader"
    print(f"\n[{what}] handover after SIGTERM (signal -> new leader line): {ms(got_b[0] - t0)}")
    assert a.wait_exit() == 0
    assert got_b[1] > got_a[1], "the fencing token did not grow"
    assert wait_rows(table, got_b[1], 5), "the new leader does not write its ledger"
    b.signal(signal.SIGTERM)
    assert b.wait_exit() == 0
    runs = check_ledger(ledger(table))
    assert [r[0] for r in runs] == [got_a[1], got_b[1]]
    assert [r[1] for r in runs] == [a.pid, b.pid]
    state = lease_state(name)
    assert state and state[0] == "free", f"lease not free after both stopped: {state}"
    print(f"[{what}] ledger runs (token, pid, rows): {runs}")
