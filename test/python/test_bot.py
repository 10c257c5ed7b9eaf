"""examples/python/bot.py against the real server: several copies, signals,
a paused leader, a database restart. Latencies are printed, never asserted."""

from __future__ import annotations

import pytest
import os
import signal
import subprocess
import time

from harness import (BOT, Freezer, WAIT, admin, check_ledger, first_leader, lease_state, ledger,
                     ms, rows_of, tcp_dsn, unique, wait_rows, wait_until)
from scenarios import (command, database_restart, leader_and_standby, strict_server_settings,
                       three_copies_kill_and_term, two_copies_handover)

pytestmark = pytest.mark.usefixtures("extension")


def test_two_copies_sigterm_hands_over(spawn):
    two_copies_handover(spawn, BOT, "python")


def test_three_copies_one_writer_sigkill_and_sigterm(spawn):
    three_copies_kill_and_term(spawn, BOT, "python")


def test_paused_leader_is_fenced_and_steps_down(spawn):
    """The leader is frozen with an insert in flight (a stalled network path,
    then SIGSTOP) past its TTL; the standby takes over; the late insert reaches
    the server after the takeover and singleton_assert rejects it; resumed, the
    old leader steps down and waits as a standby."""
    name, table = unique("paused"), unique("ledger")
    relay = Freezer(int(os.environ["PGPORT"]))
    try:
        a = spawn(command(BOT, name, table, "4s", tcp_dsn(port=relay.port)), "a")
        got_a = a.next_leader()
        assert got_a
        b = spawn(command(BOT, name, table, "4s"), "b")
        assert b.wait_stderr("standby")
        assert wait_rows(table, got_a[1], 3)

        # Requests first: were the replies held at once, the reply to the
        # insert that just committed (still in the relay when the poll above
        # saw its row) would be held, and the bot would wait for it forever
        # instead of sending the next insert into the stalled path.
        relay.freeze(replies=False)
        assert wait_until(lambda: "singleton_assert" in relay.held_text()), \
            "no insert of the leader got stuck in the frozen path"
        relay.freeze()
        a.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        got_b = b.next_leader()
        assert got_b, "the standby did not take over from the paused leader"
        print(f"\n[python] takeover after the leader froze (ttl 4s): {ms(got_b[0] - t0)}")
        assert got_b[1] > got_a[1]
        assert wait_rows(table, got_b[1], 3)
        rows_a = rows_of(table, got_a[1])

        relay.thaw()  # the stalled insert reaches the server now, after the takeover
        assert wait_until(lambda: "55000" in relay.replies_text()), \
            "the late insert was not rejected with SQLSTATE 55000"
        a.signal(signal.SIGCONT)
        assert a.wait_stderr("insert rejected by singleton_assert"), "the bot did not see the rejection"
        assert a.wait_stderr("waiting as a standby again"), "the resumed leader did not step down"
        assert a.proc.poll() is None, "the resumed leader exited instead of waiting as a standby"
        assert rows_of(table, got_a[1]) == rows_a, "a late insert of the paused leader landed"
        assert a.lines.empty(), "the resumed leader printed a leader line while the other leads"

        b.signal(signal.SIGTERM)  # the resumed instance is a healthy standby: it takes over
        got_a2 = a.next_leader()
        assert got_a2 and got_a2[1] > got_b[1]
        assert b.wait_exit() == 0
        assert wait_rows(table, got_a2[1], 3)
        a.signal(signal.SIGTERM)
        assert a.wait_exit() == 0
        runs = check_ledger(ledger(table))
        assert [r[0] for r in runs] == [got_a[1], got_b[1], got_a2[1]]
    finally:
        relay.close()


def test_a_newer_deployment_of_higher_priority_takes_over(spawn):
    """Two copies of priority 0 run (a leader, a standby); a third copy of
    priority 1 starts (the new deployment): the leader is asked to step down,
    stops its work, releases, and the release hands the lease to the new copy.
    The older copies wait as standbys and never take it back; the ledger shows
    one writer at a time."""
    name, table, a, got_a, b = leader_and_standby(spawn, BOT, "prio", "2s", 5)

    t0 = time.monotonic()
    c = spawn(command(BOT, name, table, "2s") + ["--priority", "1"], "c")
    got_c = c.next_leader()
    assert got_c, "the instance of higher priority did not take over"
    print(f"\n[python] copy of priority 1 started -> its leader line: {ms(got_c[0] - t0)} "
          "(the process start included)")
    assert c.wait_stderr(r": leader, token")
    refused, led = _logged_at(c, "standby, held by"), _logged_at(c, ": leader, token")
    print(f"[python] its first refused acquire -> it leads (its log, ms resolution): "
          f"{ms(led - refused)}")
    assert got_c[1] > got_a[1]
    assert a.wait_stderr("step-down requested"), "the leader did not report the step-down request"
    assert a.wait_stderr("waiting as a standby again"), "the old leader did not go back to standby"
    assert wait_rows(table, got_c[1], 5)
    time.sleep(3.0)  # > ttl: several heartbeats of the new leader
    assert a.lines.empty() and b.lines.empty(), "an older copy took the lease back"
    assert a.proc.poll() is None and b.proc.poll() is None, "an older copy exited"
    assert lease_state(name)[0] == "held"

    c.signal(signal.SIGTERM)  # the new leader goes: an older copy leads again
    assert c.wait_exit() == 0
    after = first_leader([a, b])
    assert after and after[2] > got_c[1]
    assert wait_rows(table, after[2], 3)
    for instance in sorted((a, b), key=lambda i: i is after[0]):  # the standby first
        instance.signal(signal.SIGTERM)
        assert instance.wait_exit() == 0
    runs = check_ledger(ledger(table))
    print(f"[python] ledger runs (token, pid, rows): {runs}")
    assert [r[0] for r in runs] == [got_a[1], got_c[1], after[2]]
    assert [r[1] for r in runs][:2] == [a.pid, c.pid]


def _logged_at(instance, text: str) -> float:
    """When the bot logged its first line containing `text` (its log's clock, seconds)."""
    from datetime import datetime

    line = next(l for l in instance.stderr().splitlines() if text in l)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_pause_and_resume_by_an_administrator(spawn):
    """singleton_pause ends the leader's tenure at once (its work stops, it
    waits as a standby), nobody leads while paused, and singleton_resume hands
    the lease to a waiting copy at once."""
    name, table, a, got_a, b = leader_and_standby(spawn, BOT, "pause", "10s", 3)

    with admin() as conn:
        conn.execute("SELECT singleton_pause(%s, 'deploying the database')", (name,))
    assert a.wait_stderr("LOST"), "the leader did not notice the pause"
    assert a.wait_stderr("waiting as a standby again")
    rows = rows_of(table, got_a[1])
    time.sleep(1.5)
    assert a.lines.empty() and b.lines.empty(), "someone led while the lease was paused"
    assert rows_of(table, got_a[1]) == rows, "the paused leader kept writing"
    assert lease_state(name)[0] == "paused"

    t0 = time.monotonic()
    with admin() as conn:
        conn.execute("SELECT singleton_resume(%s)", (name,))
    resumed = first_leader([a, b])
    assert resumed, "nobody led after the resume"
    print(f"\n[python] resume -> a leader line: {ms(resumed[1] - t0)}")
    assert resumed[2] > got_a[1]
    assert wait_rows(table, resumed[2], 3)
    for instance in sorted((a, b), key=lambda i: i is resumed[0]):  # the standby first
        instance.signal(signal.SIGTERM)
        assert instance.wait_exit() == 0
    runs = check_ledger(ledger(table))
    assert [r[0] for r in runs] == [got_a[1], resumed[2]]


def test_strict_server_settings_keep_the_leader(spawn):
    strict_server_settings(spawn, BOT, "python")


def test_database_restart_is_survived(spawn):
    database_restart(spawn, BOT, "python")


def test_bad_input_gets_clear_errors(tmp_path):
    def run(*args: str, dsn: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(BOT + list(args), capture_output=True, text=True, timeout=WAIT)

    missing = run("--name", "x", "--ledger", "t")
    assert missing.returncode == 2 and "--dsn" in missing.stderr
    bad_ttl = run("--dsn", tcp_dsn(), "--name", "x", "--ledger", "t", "--ttl", "10")
    assert bad_ttl.returncode == 2 and "invalid duration '10'" in bad_ttl.stderr
    small_ttl = run("--dsn", tcp_dsn(), "--name", "x", "--ledger", "t", "--ttl", "50ms")
    assert small_ttl.returncode == 2 and "ttl must be at least 100ms" in small_ttl.stderr
    long_name = run("--dsn", tcp_dsn(), "--name", "n" * 256, "--ledger", "t")
    assert long_name.returncode == 2 and "name must be 1 to 255 characters" in long_name.stderr
    bad_table = run("--dsn", tcp_dsn(), "--name", "x", "--ledger", "a..b")
    assert bad_table.returncode == 2 and "invalid table name" in bad_table.stderr
    bad_priority = run("--dsn", tcp_dsn(), "--name", "x", "--ledger", "t", "--priority", "high")
    assert bad_priority.returncode == 2 and "--priority" in bad_priority.stderr
    bad_dsn = run("--dsn", "host=127.0.0.1 nonsense", "--name", "x", "--ledger", "t")
    assert bad_dsn.returncode == 2 and "invalid dsn" in bad_dsn.stderr

    db = unique("noext")
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        no_ext = run("--dsn", tcp_dsn(dbname=db), "--name", "x", "--ledger", "t")
        assert no_ext.returncode == 1, no_ext.stderr
        assert "CREATE EXTENSION singleton_lock" in no_ext.stderr
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
