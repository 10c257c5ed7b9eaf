"""The library under limits an administrator sets for the application's role
or database: a statement_timeout shorter than the library's own waits, an
idle_session_timeout shorter than its sessions' pauses."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

import singleton_lock
import singleton_lock.sql

from harness import (DEFERRABLE_DEFAULTS, WAIT, admin, fenced_work, lease_state, scratch_database,
                     serializable_batch, unique, wait_until, wait_until_async)

pytestmark = pytest.mark.usefixtures("extension")


@pytest.fixture
def own_database():
    """A database of the test's own, with the extension: its counters show
    whether any statement of the electors using it was cancelled (a
    cancelled statement rolls its transaction back)."""
    with scratch_database("sl_limits") as name:
        yield name


def rolled_back(database: str) -> int:
    """Once every backend of the database has gone (each flushed its
    counters as it exited): its rolled-back transactions."""
    stats = "FROM pg_stat_database WHERE datname = %s"

    def value(column: str) -> int:
        with admin() as conn:
            return conn.execute(f"SELECT {column} {stats}", (database,)).fetchone()[0]

    assert wait_until(lambda: value("numbackends") == 0, WAIT)
    assert value("xact_commit") > 0
    return value("xact_rollback")


async def leader_and_waiting_standby(name: str, dsn: str):
    """A leader of lease `name` (ttl 6 s) and a standby whose acquire() is
    under way: (leader, its lease, standby, the standby's acquire)."""
    leader = singleton_lock.AsyncElector(name, dsn=dsn, ttl="6s")
    lease = await asyncio.wait_for(leader.acquire(), WAIT)
    standby = singleton_lock.AsyncElector(name, dsn=dsn, ttl="6s")
    return leader, lease, standby, asyncio.ensure_future(standby.acquire())


@pytest.mark.parametrize("setting", ["statement_timeout", "idle_session_timeout"])
async def test_short_server_timeouts_end_no_wait_no_watch_and_no_session(
        own_database, caplog, monkeypatch, setting):
    """300 ms (here the connection's setting; a role's or a database's works
    the same). statement_timeout: the standby's waiting acquires (1 s slices)
    and the leader's watches stay under it; before, each was cancelled, the
    standby reconnected and the leader gave up watching.
    idle_session_timeout: the library turns it off for its connection (which
    a leader that does not watch leaves idle between heartbeats)."""
    caplog.set_level(logging.INFO, logger="singleton_lock")
    if setting == "idle_session_timeout":
        # Where the leader cannot watch (an older extension, no EXECUTE on
        # singleton_watch), its connection idles between heartbeats.
        probe = singleton_lock.sql.ServerFeatures.from_probe.__func__
        monkeypatch.setattr(singleton_lock.sql.ServerFeatures, "from_probe", classmethod(
            lambda cls, row: probe(cls, row)._replace(watch=False)))
    dsn = f"dbname={own_database} options='-c {setting}=300'"
    leader, lease, standby, waiting = await leader_and_waiting_standby(unique("limits"), dsn)
    await asyncio.sleep(1.5)  # the leader watches, the standby waits: 5 statement_timeouts
    assert not waiting.done()
    assert await asyncio.wait_for(leader.release(), WAIT) is True
    taken = await asyncio.wait_for(waiting, WAIT)
    assert taken.token > lease.token
    await asyncio.sleep(1.0)  # the new leader watches
    await standby.aclose()
    await leader.aclose()
    complaints = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                  and "no EXECUTE on singleton_watch" not in r.getMessage()]  # (the patch's)
    assert complaints == []
    assert rolled_back(own_database) == 0, "a statement of the electors was cancelled in the server"


def waiting_backends(database: str) -> list:
    """The database's backends waiting inside singleton_acquire."""
    with admin() as conn:
        return [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
            "AND wait_event_type = 'Extension' AND query LIKE '%%singleton_acquire%%'",
            (database,)).fetchall()]


@pytest.mark.parametrize("setting,value,reconnect", [
    ("default_transaction_isolation", "repeatable read", False),
    ("default_transaction_isolation", "serializable", True),
    ("default_transaction_read_only", "on", True)])
async def test_a_database_defaulting_to_snapshot_isolation_or_read_only_still_hands_over(
        own_database, caplog, setting, value, reconnect):
    """An administrator's `ALTER DATABASE ... SET default_transaction_isolation`
    or `default_transaction_read_only`: the server refuses a waiting acquire or
    watch under a transaction snapshot (it would never see the release), and
    every call but the watch in a read-only transaction, so each connection of
    the library makes READ COMMITTED and read-write its own defaults, a new one
    after a reconnection too (here the standby's waiting backend is
    terminated). Before: the standby logged the 0A000 refusal and retried it
    forever, never leading; under read-only the leader never led."""
    caplog.set_level(logging.INFO, logger="singleton_lock")
    with admin() as conn:
        conn.execute(f"ALTER DATABASE {own_database} SET {setting} = '{value}'")
    dsn = f"dbname={own_database}"
    leader, lease, standby, waiting = await leader_and_waiting_standby(unique("isolation"), dsn)
    assert await wait_until_async(lambda: len(waiting_backends(own_database)) == 1), \
        "the standby does not wait in the server"
    if reconnect:
        (first,) = waiting_backends(own_database)
        with admin() as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone()[0]
        assert await wait_until_async(lambda: waiting_backends(own_database) not in ([], [first])), \
            "the standby does not wait again after reconnecting"
    await asyncio.sleep(0.3)
    assert not waiting.done()
    assert await asyncio.wait_for(leader.release(), WAIT) is True
    taken = await asyncio.wait_for(waiting, WAIT)
    assert taken.token > lease.token
    await standby.aclose()
    await leader.aclose()
    refusals = [r.getMessage() for r in caplog.records
                if "READ COMMITTED" in r.getMessage() or "read-only" in r.getMessage()]
    assert refusals == []


async def test_a_lock_timeout_default_fails_no_call(own_database, caplog):
    """An administrator's lock_timeout for the database: the release (and the
    standby's take) waits for the lease's row until the leader's asserting
    transaction ends (fenced work ends before the lease moves), so the
    library's sessions turn it off for themselves. Before: the release failed
    with 55P03 ("release failed: canceling statement due to lock timeout")."""
    caplog.set_level(logging.INFO, logger="singleton_lock")
    with admin() as conn:
        conn.execute(f"ALTER DATABASE {own_database} SET lock_timeout = '100ms'")
    dsn = f"dbname={own_database}"
    leader, lease, standby, waiting = await leader_and_waiting_standby(unique("locks"), dsn)
    # (still running at the release)
    working = await asyncio.to_thread(fenced_work, lease.name, lease.token, 1, dsn)
    assert await asyncio.wait_for(leader.release(), WAIT) is True
    taken = await asyncio.wait_for(waiting, WAIT)
    assert taken.token > lease.token
    assert await asyncio.wrap_future(working) == "held"
    await standby.aclose()
    await leader.aclose()
    assert [r.getMessage() for r in caplog.records if "lock timeout" in r.getMessage()] == []


async def test_a_deferrable_default_delays_no_connect(caplog):
    """A reporting role's defaults (SERIALIZABLE, READ ONLY, DEFERRABLE) while
    a serializable read-write transaction runs (here in another database:
    any does): every statement that takes a snapshot waits for a safe one
    until it ends, so the library's first statement on every connection is a
    SET of its own defaults, which takes none. Before: the probe waited ("no
    reply from the server in time") and nobody led."""
    caplog.set_level(logging.INFO, logger="singleton_lock")
    dsn = f"options='{DEFERRABLE_DEFAULTS}'"
    with serializable_batch("dbname=postgres"):
        leader, lease, standby, waiting = await asyncio.wait_for(
            leader_and_waiting_standby(unique("deferrable"), dsn), 10)
        assert await asyncio.wait_for(leader.release(), WAIT) is True
        taken = await asyncio.wait_for(waiting, WAIT)
        assert taken.token > lease.token
        await standby.aclose()
        await leader.aclose()
    assert [r.getMessage() for r in caplog.records if "no reply" in r.getMessage()] == []


async def test_a_release_after_a_loss_sets_its_new_session_up_too(own_database, caplog):
    """A lease lost without the server's word (its holder's backend hangs:
    SIGSTOP) may still be ours on the server: release() frees it with its
    token over a new connection, which sets the library's session defaults
    first like every other. Before: in a database defaulting to read-only
    transactions that release was refused (25006) until it gave up after a
    ttl, and the lease stayed held until it expired."""
    with admin() as conn:
        conn.execute(f"ALTER DATABASE {own_database} SET default_transaction_read_only = on")
    name, dsn = unique("lost"), f"dbname={own_database}"
    # (grace 3 s: the time left for release() between the loss and the expiry)
    elector = singleton_lock.AsyncElector(name, dsn=dsn, ttl="8s", grace="3s")
    lease = await asyncio.wait_for(elector.acquire(), WAIT)
    backend = lease_state(name, dsn)[1]
    os.kill(backend, signal.SIGSTOP)
    try:
        reason = await asyncio.wait_for(lease.wait_lost(), WAIT)
        assert reason is singleton_lock.LossReason.DEADLINE
        assert lease_state(name, dsn)[0] == "held", "the hung session's lease should still be held"
        assert await asyncio.wait_for(elector.release(), WAIT) is True
        assert lease_state(name, dsn)[0] == "free"
    finally:
        os.kill(backend, signal.SIGCONT)
        await elector.aclose()
    assert [r.getMessage() for r in caplog.records if "read-only" in r.getMessage()] == []


async def test_a_database_encoding_or_date_style_changes_no_name_and_no_time(own_database):
    """An administrator's LATIN1 client_encoding and German DateStyle for the
    database: the library still takes the lease of that very name (its UTF-8,
    as the other clients send it; LATIN1 cannot even carry 東京) and reads
    the times. Before: psycopg refused to read a German timestamp
    (NotImplementedError out of acquire()), and LATIN1 could not encode the name."""
    with admin() as conn:
        conn.execute(f"ALTER DATABASE {own_database} SET client_encoding = 'LATIN1'")
        conn.execute(f"ALTER DATABASE {own_database} SET DateStyle = 'German, DMY'")
    name = "zürich-東京-" + unique("enc")
    elector = singleton_lock.AsyncElector(name, dsn=f"dbname={own_database}", ttl="6s")
    lease = await asyncio.wait_for(elector.acquire(), WAIT)
    try:
        assert lease.expires_at.year >= 2026
        with admin(f"dbname={own_database}") as conn:
            stored = conn.execute(
                "SELECT convert_to(name, 'UTF8') FROM singleton_lock_leases").fetchall()
        assert [bytes(r[0]) for r in stored] == [name.encode()]
    finally:
        assert await asyncio.wait_for(elector.release(), WAIT) is True
        await elector.aclose()
