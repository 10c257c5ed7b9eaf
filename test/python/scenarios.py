"""Scenarios run against both example programs (examples/python/bot.py and
examples/node/worker.js): they share the command line and the ledger."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from typing import Callable, List, Tuple

import pytest

from harness import (Instance, check_ledger, first_leader, ledger, lease_state, ms,
                     tcp_dsn, unique, wait_rows)

Spawn = Callable[[List[str], str], Instance]


def command(program: List[str], name: str, table: str, ttl: str, dsn: str = "") -> List[str]:
    return program + ["--dsn", dsn or tcp_dsn(), "--name", name, "--ledger", table, "--ttl", ttl]


def leader_and_standby(spawn: Spawn, program: List[str], prefix: str, ttl: str,
                       rows: int) -> Tuple[str, str, Instance, Tuple[float, int], Instance]:
    """Copies "a" and "b" of `program` on a new lease and ledger: a leads and has
    written `rows` rows, b waits as a standby. (name, table, a, a's leader
    line (time, token), b)."""
    name, table = unique(prefix), unique("ledger")
    cmd = command(program, name, table, ttl)
    a = spawn(cmd, "a")
    got_a = a.next_leader()
    assert got_a, "the first instance never led"
    b = spawn(cmd, "b")
    assert b.wait_stderr("standby"), "the second instance never reported standby"
    assert wait_rows(table, got_a[1], rows), "the leader does not write its ledger"
    return name, table, a, got_a, b


def sigterm_hands_over(leader: Instance, standby: Instance, figure: str) -> Tuple[float, int]:
    """SIGTERM to `leader`: `standby` prints its leader line (the time from the
    signal is printed as `figure`) and `leader` exits 0. standby's (time, token)."""
    t0 = time.monotonic()
    leader.signal(signal.SIGTERM)
    got = standby.next_leader()
    assert got, "the standby did not take over after SIGTERM to the leader"
    print(f"{figure}: {ms(got[0] - t0)}")
    assert leader.wait_exit() == 0
    return got


def two_copies_handover(spawn: Spawn, program: List[str], what: str) -> None:
    """Leader + standby; SIGTERM to the leader hands over in milliseconds; exactly
    one writes at a time; both exit 0 on SIGTERM."""
    name, table, a, got_a, b = leader_and_standby(spawn, program, "two", "5s", 5)
    assert b.lines.empty(), "the standby printed a leader line while the leader held the lease"
    got_b = sigterm_hands_over(a, b,
                               f"\n[{what}] handover after SIGTERM (signal -> new leader line)")
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


def strict_server_settings(spawn: Spawn, program: List[str], what: str) -> None:
    """Defaults an administrator may give the application's role or database
    (here the connection's options; they work the same): statement_timeout
    and idle_session_timeout of 300 ms, SERIALIZABLE isolation, LATIN1 and
    German dates. The standby's waits stay under the first, the sessions turn
    the second off and make READ COMMITTED their default (the server refuses a
    waiting acquire under a transaction snapshot), names go as UTF-8 (the
    lease is the one other clients call "zürich_...") and dates as ISO. Nobody
    loses or reconnects, and SIGTERM still hands over."""
    name, table = unique("zürich"), unique("ledger")
    dsn = tcp_dsn(options="'-c statement_timeout=300 -c idle_session_timeout=300 "
                          "-c default_transaction_isolation=serializable "
                          "-c client_encoding=LATIN1 -c DateStyle=German,DMY'")
    cmd = command(program, name, table, "3s", dsn)
    a = spawn(cmd, "a")
    got_a = a.next_leader()
    assert got_a, "the first instance never led"
    b = spawn(cmd, "b")
    assert b.wait_stderr("standby"), "the second instance never reported standby"
    time.sleep(2.0)  # heartbeats every second, 1 s wait slices: several of each timeout
    assert a.lines.empty() and b.lines.empty(), "leadership changed without a fault"
    state = lease_state(name)
    assert state is not None and state[0] == "held", f"no lease named {name!r} held: {state}"
    got_b = sigterm_hands_over(a, b, f"\n[{what}] handover under strict server settings")
    assert got_b[1] > got_a[1]
    b.signal(signal.SIGTERM)
    assert b.wait_exit() == 0
    for who in (a, b):
        log = who.stderr()
        for sign in ("LOST", "timeout", "READ COMMITTED", "unavailable"):
            assert sign not in log, f"{who.label}: {log}"


def three_copies_kill_and_term(spawn: Spawn, program: List[str], what: str) -> None:
    """Three copies: one writes at a time; SIGKILL of the leader hands over by
    session binding; SIGTERM of the next hands over to the last."""
    name, table = unique("three"), unique("ledger")
    cmd = command(program, name, table, "10s")
    a = spawn(cmd, "a")
    got_a = a.next_leader()
    assert got_a
    others = [spawn(cmd, "b"), spawn(cmd, "c")]
    for other in others:
        assert other.wait_stderr("standby")
    assert wait_rows(table, got_a[1], 5)
    assert all(o.lines.empty() for o in others), "a standby led while the leader held the lease"

    t0 = time.monotonic()
    a.signal(signal.SIGKILL)
    second = first_leader(others)
    assert second, "nobody took over after SIGKILL (session binding)"
    print(f"\n[{what}] takeover after SIGKILL of the leader (ttl 10s): {ms(second[1] - t0)}")
    leader2, token2 = second[0], second[2]
    last = next(o for o in others if o is not leader2)
    assert wait_rows(table, token2, 5)
    assert last.lines.empty(), "two instances led at once"

    third = sigterm_hands_over(leader2, last, f"[{what}] handover after SIGTERM with two standbys")
    assert wait_rows(table, third[1], 5)
    last.signal(signal.SIGTERM)
    assert last.wait_exit() == 0
    runs = check_ledger(ledger(table))
    assert [r[0] for r in runs] == [got_a[1], token2, third[1]]
    print(f"[{what}] ledger runs (token, pid, rows): {runs}")


def database_restart(spawn: Spawn, program: List[str], what: str) -> None:
    """A leader and a standby survive a server restart: a leader emerges again,
    tokens never go backwards, the ledger resumes, nobody exits."""
    restart = os.environ.get("SL_IT_RESTART")
    if not restart:
        pytest.skip("set SL_IT_RESTART to a command that restarts the server (test/run_all.sh does)")
    _, table, a, got_a, b = leader_and_standby(spawn, program, "restart", "5s", 3)
    t0 = time.monotonic()
    subprocess.run(shlex.split(restart), check=True, stdout=subprocess.DEVNULL)
    print(f"\n[{what}] server restarted in {ms(time.monotonic() - t0)}")
    new = first_leader([a, b])
    assert new, "no instance led again after the restart"
    print(f"[{what}] new leader line {ms(new[1] - t0)} after the restart began "
          f"({'same' if new[0] is a else 'other'} instance, token {new[2]})")
    assert new[2] >= got_a[1], "the token went backwards across the restart"
    assert wait_rows(table, new[2], 3), "the ledger did not resume after the restart"
    assert a.proc.poll() is None and b.proc.poll() is None, "an instance died in the restart"
    for instance in (a, b):
        instance.signal(signal.SIGTERM)
    assert a.wait_exit() == 0 and b.wait_exit() == 0
    runs = check_ledger(ledger(table))
    print(f"[{what}] ledger runs (token, pid, rows): {runs}")
