"""The leader's next statement (a heartbeat, the release) is queued behind the
singleton_watch in flight, and the server ends the watch when it arrives: no
cancel request. Against a server whose watch does not end so (a build of 1.1
older than that, simulated by a schema whose singleton_watch sleeps first),
a cancel request ends it instead, and nothing else changes."""

from __future__ import annotations

import asyncio
import time

import pytest
from psycopg import pq

import singleton_lock
import singleton_lock.sql
import singleton_lock.keeper
import singleton_lock.link
from singleton_lock import State
from singleton_lock.link import Link

from harness import (WAIT, LogLines, admin, lease_state, ms, tcp_dsn, unique, wait_until,
                     watch_in_flight)

pytestmark = pytest.mark.usefixtures("extension")

OLD_SCHEMA = "sl_test_old_watch"
LOGGED_SCHEMA = "sl_test_logged_watch"


@pytest.fixture
def cancels(monkeypatch):
    """Every cancel request a Link sends (the library's only way to interrupt
    a statement while keeping its connection), as it is sent."""
    sent = []
    interrupt = Link.interrupt

    def counted(link):
        sent.append(time.monotonic())
        return interrupt(link)

    monkeypatch.setattr(Link, "interrupt", counted)
    return sent


def _proxy_schema(schema: str, watch_function: str) -> None:
    """The application functions in a schema of their own, calling the
    extension's, except singleton_watch: `watch_function` creates it ({s}:
    the schema)."""
    with admin() as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        for args, call in (("text, interval, text, interval", "$1, $2, $3, $4"),
                           ("text, interval, text, interval, integer", "$1, $2, $3, $4, $5")):
            conn.execute(
                f"CREATE FUNCTION {schema}.singleton_acquire({args}) RETURNS TABLE("
                "acquired boolean, token bigint, holder text, expires_at timestamptz) "
                f"LANGUAGE sql AS 'SELECT * FROM public.singleton_acquire({call})'")
        conn.execute(
            f"CREATE FUNCTION {schema}.singleton_heartbeat(text, bigint, interval) "
            "RETURNS timestamptz LANGUAGE sql AS 'SELECT public.singleton_heartbeat($1, $2, $3)'")
        conn.execute(  # (sl_test.release_delay: a release that takes its time)
            f"CREATE FUNCTION {schema}.singleton_release(text, bigint) RETURNS boolean "
            "LANGUAGE sql AS 'SELECT pg_sleep(coalesce(nullif(current_setting("
            "''sl_test.release_delay'', true), ''''), ''0'')::float8); "
            "SELECT public.singleton_release($1, $2)'")
        conn.execute(watch_function.replace("{s}", schema))


def _drop_schema(schema: str) -> None:
    with admin() as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def old_watch_schema():
    """singleton_watch sleeps its whole wait (a pg_sleep, which no statement
    arriving from the client ends; a cancel request does) and only then asks
    the extension, without waiting."""
    _proxy_schema(OLD_SCHEMA, (
        "CREATE FUNCTION {s}.singleton_watch(text, bigint, interval) RETURNS text "
        "LANGUAGE sql AS 'SELECT pg_sleep(extract(epoch FROM $3)::float8); "
        "SELECT public.singleton_watch($1, $2, interval ''0'')'"))
    try:
        yield OLD_SCHEMA
    finally:
        _drop_schema(OLD_SCHEMA)


@pytest.fixture
def logged_watch_schema():
    """The extension's singleton_watch, each call recorded by the server in
    the schema's table `watches`: the wait asked for, how long it lasted, and
    its outcome, or 'cancelled' (57014, from a cancel request: recorded, then
    'held' returned)."""
    _proxy_schema(LOGGED_SCHEMA, """
        CREATE TABLE {s}.watches (seq serial, asked interval, lasted interval, outcome text);
        CREATE FUNCTION {s}.singleton_watch(n text, t bigint, w interval) RETURNS text
        LANGUAGE plpgsql AS $$
        DECLARE
          started timestamptz := clock_timestamp();
          outcome text;
        BEGIN
          BEGIN
            outcome := public.singleton_watch(n, t, w);
          EXCEPTION WHEN query_canceled THEN
            outcome := 'cancelled';
          END;
          INSERT INTO {s}.watches (asked, lasted, outcome)
            VALUES (w, clock_timestamp() - started, outcome);
          RETURN CASE outcome WHEN 'cancelled' THEN 'held' ELSE outcome END;
        END $$""")
    try:
        yield LOGGED_SCHEMA
    finally:
        _drop_schema(LOGGED_SCHEMA)


def recorded_watches(schema: str):
    """(asked s, lasted s, outcome) of each watch the server recorded, in order."""
    with admin() as conn:
        return conn.execute(
            f"SELECT extract(epoch FROM asked)::float8, extract(epoch FROM lasted)::float8, "
            f"outcome FROM {schema}.watches ORDER BY seq").fetchall()


# The wait a backend asked singleton_watch for: the library binds its
# parameters client-side, so they are in pg_stat_activity's query.
ASKED_WAIT = "substring(query FROM '''([0-9]+ milliseconds)''')::interval"


def _in_watch(pid: int, select: str, condition: str, *params):
    """The row `select` of backend `pid` if it is in a singleton_watch
    meeting `condition`, else None."""
    with admin() as conn:
        return conn.execute(
            f"SELECT {select} FROM pg_stat_activity WHERE pid = %s AND state = 'active' AND "
            f"query LIKE '%%singleton_watch(%%' AND {condition}", (pid, *params)).fetchone()


def watching(pid: int, longer_than: str = "0"):
    """The wait the backend `pid` asked singleton_watch for, if it is in one."""
    row = _in_watch(pid, ASKED_WAIT, f"{ASKED_WAIT} > %s::interval", longer_than)
    return row[0] if row else None


def watch_with_time_left(pid: int, left: str = "200 ms") -> bool:
    """The backend `pid` is in a singleton_watch that asked to last at least
    `left` longer (by its start and the wait in its query)."""
    return _in_watch(pid, "1", f"query_start + {ASKED_WAIT} > clock_timestamp() + %s::interval",
                     left) is not None


async def _eventually(predicate, timeout: float = WAIT) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: wait_until(predicate, timeout))


async def test_a_release_ends_the_watch_without_a_cancel_request(monkeypatch, cancels):
    """ttl 600 s: the watch in flight is asked to last past the heartbeat
    due in 200 s, and the fallback's bound is made longer than the test's
    wait: the release returns, and the standby leads, only because the
    server ended the watch when the release arrived."""
    monkeypatch.setattr(singleton_lock.link, "YIELD_WITHIN", 10 * WAIT, raising=False)
    name = unique("q_release")
    leader = singleton_lock.AsyncElector(name, ttl="600s")
    lease = await leader.acquire()
    pid = lease_state(name)[1]
    assert await _eventually(lambda: watch_in_flight(pid)), "the leader never watched"
    standby = singleton_lock.AsyncElector(name, ttl="600s")
    waiting = asyncio.ensure_future(standby.acquire())
    assert await _eventually(lambda: standby.state is State.STANDBY)
    t0 = time.monotonic()
    assert await asyncio.wait_for(leader.release(), WAIT) is True
    taken = await asyncio.wait_for(waiting, WAIT)
    print(f"\n[queued] release queued behind a watch -> standby leads: "
          f"{ms(time.monotonic() - t0)}")
    assert cancels == [], "a cancel request was sent"
    assert taken.token > lease.token and leader._watch_yields is True  # (learned; kept after the tenure)
    await standby.aclose()
    await leader.aclose()


async def test_heartbeats_due_during_a_watch_are_queued_behind_it(monkeypatch, cancels):
    """ttl 3 s (a heartbeat every second; the step-down point under 2 s after
    each): every watch is asked to last 10 minutes past the next heartbeat.
    The lease is kept for 5 s only because each heartbeat ends the watch it
    is queued behind."""
    monkeypatch.setattr(singleton_lock.keeper, "WATCH_PAST_HEARTBEAT", 600.0, raising=False)
    monkeypatch.setattr(singleton_lock.link, "YIELD_WITHIN", 10 * WAIT, raising=False)
    name = unique("q_heartbeat")
    async with singleton_lock.AsyncElector(name, ttl="3s") as leader:
        lease = await leader.acquire()
        pid = lease_state(name)[1]
        assert await _eventually(lambda: watching(pid, "600 s")), "no watch past the heartbeat"
        first_expiry = lease.expires_at
        await asyncio.sleep(5)
        assert lease.held and leader.state is State.LEADER, lease
        assert lease.expires_at > first_expiry and lease_state(name) == ("held", pid)
        assert watching(pid, "600 s"), "the leader no longer watches past its heartbeats"
    assert cancels == [], "a cancel request was sent"


async def test_a_server_whose_watch_does_not_end_gets_a_cancel_request(old_watch_schema, cancels):
    """The simulated older server: the first heartbeat queued behind a watch
    waits YIELD_WITHIN, then a cancel request ends the watch; the elector
    learns it (a log line), later watches end before each heartbeat, and a
    release cancels the watch at once. Heartbeats hold the lease throughout."""
    name = unique("q_old")
    with LogLines(r"did not end singleton_watch") as learned:
        leader = singleton_lock.AsyncElector(name, ttl="2s", schema=old_watch_schema)
        lease = await leader.acquire()
        standby = singleton_lock.AsyncElector(name, ttl="2s", schema=old_watch_schema)
        waiting = asyncio.ensure_future(standby.acquire())
        assert await _eventually(lambda: standby.state is State.STANDBY)
        await asyncio.sleep(4)  # two ttl: heartbeats must get through
        assert lease.held and lease_state(name)[0] == "held"
        assert learned.lines and leader._tenure.link.yields is False
        learning = len(cancels)
        assert learning >= 1
        # Between two watches (one ends by itself before each heartbeat) a
        # release has nothing to cancel: release while one has time left.
        pid = lease_state(name)[1]
        assert await _eventually(lambda: watch_with_time_left(pid)), "no watch in flight"
        t0 = time.monotonic()
        assert await asyncio.wait_for(leader.release(), WAIT) is True
        taken = await asyncio.wait_for(waiting, WAIT)
        print(f"\n[queued] older server: release -> standby leads (cancel request): "
              f"{ms(time.monotonic() - t0)}")
        assert taken.token > lease.token and len(cancels) == learning + 1
        await standby.aclose()
        await leader.aclose()


async def test_a_cancel_that_hits_the_queued_release_is_followed_by_the_release_again(
        monkeypatch, old_watch_schema, cancels):
    """On the older server: watches of 10 ms, releases that take 200 ms, and
    cancel requests delivered 50 ms late (a busy machine): the cancel request
    sent for the watch arrives after the watch ended, and cancels the queued
    release instead (57014); the release is sent again once that request was
    delivered, and succeeds."""
    send_cancel = singleton_lock.link._send_cancel

    def late(*args):
        time.sleep(0.05)  # (on the cancel's own thread)
        send_cancel(*args)

    monkeypatch.setattr(singleton_lock.link, "_send_cancel", late)
    monkeypatch.setattr(singleton_lock.keeper, "WATCH_MAX", 0.01)
    elector = singleton_lock.AsyncElector(unique("q_hit"), ttl="1s", schema=old_watch_schema,
                                          dsn="options='-c sl_test.release_delay=0.2'")
    with LogLines(r"release failed.*") as failures, LogLines(r"sending it again") as resent:
        lease = await elector.acquire()
        await asyncio.sleep(1)  # past the first heartbeat: the elector learns the server's way
        assert elector._tenure.link.yields is False and lease.held
        learning = len(cancels)  # (those hit the watch: it sleeps 1.3 s)
        released = [await elector.release()]
        for _ in range(5):
            await elector.acquire()
            await asyncio.sleep(0.05)
            released.append(await elector.release())
    await elector.aclose()
    print(f"\n[queued] older server, slow releases: {len(resent.lines)} of 6 releases were hit "
          f"by the cancel of their watch and sent again")
    assert failures.lines == [] and released == [True] * 6
    assert resent.lines, "no cancel request hit a queued release: the case was not exercised"
    assert len(resent.lines) == len(cancels) - learning, "a release was cancelled for good"


async def test_releases_at_any_point_of_a_watch_on_the_older_server(
        monkeypatch, old_watch_schema, cancels):
    """On the older server, watches of 10 ms, released at varying points of
    one (a cancel request may end the watch, arrive after it ended, or after
    the release too): every release succeeds."""
    monkeypatch.setattr(singleton_lock.keeper, "WATCH_MAX", 0.01)
    elector = singleton_lock.AsyncElector(unique("q_race"), ttl="1s", schema=old_watch_schema)
    released = 0
    with LogLines(r"release failed.*") as failures, LogLines(r"sending it again") as resent:
        lease = await elector.acquire()
        await asyncio.sleep(1)  # past the first heartbeat: the elector learns the server's way
        assert elector._tenure.link.yields is False and lease.held
        released += await elector.release()
        for i in range(60):
            await elector.acquire()
            await asyncio.sleep(0.02 + (i % 7) * 0.0013)  # release at varying points of a watch
            released += await elector.release()
    await elector.aclose()
    print(f"\n[queued] older server: {len(resent.lines)} of 61 releases were hit by the cancel "
          f"of their watch and sent again; {len(cancels)} cancel requests")
    assert failures.lines == [] and released == 61 and cancels


async def test_the_server_ends_each_watch_with_held_when_the_next_statement_arrives(
        monkeypatch, logged_watch_schema, cancels):
    """As the server saw it: ttl 3 s, every watch asked to last 10 minutes
    past the next heartbeat; over 4 s of heartbeats and the release, each
    watch ended 'held' long before its wait was up (when the statement queued
    behind it arrived), and none was cancelled."""
    monkeypatch.setattr(singleton_lock.keeper, "WATCH_PAST_HEARTBEAT", 600.0, raising=False)
    monkeypatch.setattr(singleton_lock.link, "YIELD_WITHIN", 10 * WAIT, raising=False)
    name = unique("q_logged")
    leader = singleton_lock.AsyncElector(name, ttl="3s", schema=logged_watch_schema)
    lease = await leader.acquire()
    pid = lease_state(name)[1]
    await asyncio.sleep(4)
    assert lease.held, "heartbeats queued behind watches did not keep the lease"
    assert await _eventually(lambda: watch_in_flight(pid)), "the leader does not watch"
    assert await asyncio.wait_for(leader.release(), WAIT) is True and lease_state(name)[0] == "free"
    await leader.aclose()
    rows = recorded_watches(logged_watch_schema)
    print(f"\n[queued] watches seen by the server (asked s, lasted s, outcome): "
          f"{[(round(a), round(b, 3), o) for a, b, o in rows]}")
    assert [o for _, _, o in rows if o != "held"] == [], "a watch was cancelled or saw a loss"
    ended_early = [(asked, lasted) for asked, lasted, _ in rows if asked > 500 and lasted < asked]
    assert len(ended_early) == len(rows) >= 4, "not every watch was ended by the next statement"
    assert cancels == [], "a cancel request was sent"


async def test_an_error_in_a_queued_statement_ends_only_that_statement(cancels):
    """On one Link: a watch in flight, then a statement that fails (division
    by zero) queued behind it. The watch ends 'held', the error is raised for
    that statement alone, the connection leaves pipeline mode and stays
    usable: a heartbeat, another watch with a heartbeat queued behind it, and
    the release all work; the lease stayed bound to the session throughout."""
    sql = singleton_lock.sql.Statements()
    name = unique("q_error")
    link = await Link.open(tcp_dsn(), WAIT)
    try:
        acquired, token, _, _ = await link.execute(sql.acquire, (name, "60s", "me", "0s"), WAIT)
        assert acquired and lease_state(name) == ("held", link.backend_pid)
        watch = await link.start(sql.watch, (name, token, "600000 milliseconds"), WAIT)
        assert await _eventually(lambda: watching(link.backend_pid, "500 s"))
        with pytest.raises(singleton_lock.Error, match="division by zero"):
            await link.execute("SELECT 1 / 0", None, WAIT)
        assert watch.done() and watch.reply().row == ("held",) and watch.reply().error is None
        assert link.broken is None and not link.closed
        assert link._conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
        assert (await link.execute(sql.heartbeat, (name, token, "60s"), WAIT))[0] is not None
        watch = await link.start(sql.watch, (name, token, "600000 milliseconds"), WAIT)
        assert await _eventually(lambda: watching(link.backend_pid, "500 s"))
        assert (await link.execute(sql.heartbeat, (name, token, "60s"), WAIT))[0] is not None
        assert watch.reply().row == ("held",)
        assert lease_state(name) == ("held", link.backend_pid)
        assert await link.execute(sql.release, (name, token), WAIT) == (True,)
    finally:
        link.close()
    assert cancels == [], "a cancel request was sent"


async def test_a_caller_cancelled_while_its_statement_is_queued_abandons_the_connection():
    """A watch in flight, a statement queued behind it that runs long
    (pg_sleep 600 s), and the caller's task is cancelled: the connection is
    given up (cancel request, then closed) and its backend ends, so the lease
    bound to that session is orphaned (free to take) at once."""
    sql = singleton_lock.sql.Statements()
    name = unique("q_cancelled")
    link = await Link.open(tcp_dsn(), WAIT)
    pid = link.backend_pid
    _, token, _, _ = await link.execute(sql.acquire, (name, "600s", "me", "0s"), WAIT)
    await link.start(sql.watch, (name, token, "600000 milliseconds"), WAIT)
    queued = asyncio.ensure_future(link.execute("SELECT pg_sleep(600)", None, None))
    assert await _eventually(lambda: running(pid, "pg_sleep"))
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert link.closed
    assert await _eventually(lambda: lease_state(name)[0] == "orphaned"), lease_state(name)
    assert await _eventually(lambda: not running(pid, "")), "the backend still runs"


def running(pid: int, query_contains: str) -> bool:
    """Whether backend `pid` exists and its current query contains the text."""
    with admin() as conn:
        return conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE %s",
                            (pid, f"%{query_contains}%")).fetchone() is not None


async def test_a_backend_terminated_during_a_watch_is_one_loss(cancels):
    """pg_terminate_backend of the leader's backend while its watch waits:
    the tenure ends once, as a lost connection (one loss callback, one LOST
    line), and the elector leads again on a new connection."""
    name = unique("q_terminated")
    losses = []
    leader = singleton_lock.AsyncElector(name, ttl="600s", on_lost=losses.append)
    with LogLines(r"LOST \(") as lost_lines:
        lease = await leader.acquire()
        pid = lease_state(name)[1]
        assert await _eventually(lambda: watch_in_flight(pid)), "the leader never watched"
        with admin() as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        assert await asyncio.wait_for(lease.wait_lost(), WAIT) is singleton_lock.LossReason.CONNECTION_LOST
        again = await asyncio.wait_for(leader.acquire(), WAIT)
    assert again.held and again.token > lease.token and lease_state(name)[1] != pid
    assert len(losses) == 1 and len(lost_lines.lines) == 1, (losses, lost_lines.lines)
    await leader.aclose()


async def test_a_release_right_after_the_first_watch_needs_no_cancel_request(cancels):
    """A job that returns as soon as it leads: its release follows the
    leader's first watch by a fraction of a millisecond. Sent before the
    server has read the watch, it could arrive in the same read, which the
    server cannot notice: the watch would then be cancelled after
    YIELD_WITHIN. The library waits until the server has begun to answer the
    watch (the extension sends the start of its reply as the watch begins to
    wait), so none of 20 such runs needs a cancel request (without that wait,
    2 runs of 5 did on the 2-core test machine)."""
    async def job(lease):
        return lease.token

    tokens = []
    for _ in range(20):
        tokens.append(await asyncio.wait_for(
            singleton_lock.run_as_leader(unique("q_quick"), job, ttl="10s", rejoin=False), WAIT))
    assert all(tokens), tokens
    assert cancels == [], f"{len(cancels)} cancel requests in 20 runs"
