"""The singleton_lock Python library against the real server."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import psycopg
import pytest

import singleton_lock
from singleton_lock import LossReason, State
from singleton_lock.link import Link, ReplyTimeout

from harness import WAIT, admin, lease_state, ms, tcp_dsn, unique, wait_until

pytestmark = pytest.mark.usefixtures("extension")


def force_release(name: str) -> None:
    with admin() as conn:
        conn.execute("SELECT singleton_force_release(%s)", (name,))


def backend_gone(pid: int) -> bool:
    with admin() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone() == (0,)


async def test_handover_heartbeats_and_tokens():
    name = unique("lib")
    a = singleton_lock.AsyncElector(name, ttl="1s")
    b = singleton_lock.AsyncElector(name, ttl="1s")
    lease_a = await a.acquire()
    assert a.state is State.LEADER and a.token == lease_a.token
    waiting = asyncio.ensure_future(b.acquire())
    assert await _eventually(lambda: b.state is State.STANDBY)
    await asyncio.sleep(2.5)  # > 2 ttl: only heartbeats keep it
    assert lease_a.held and not waiting.done()
    assert lease_state(name)[0] == "held"
    t0 = time.monotonic()
    assert await a.release() is True
    lease_b = await asyncio.wait_for(waiting, WAIT)
    print(f"\n[library] release -> standby leads: {ms(time.monotonic() - t0)}")
    assert lease_b.token > lease_a.token and lease_a.released and not lease_a.held
    await b.aclose()
    assert lease_b.released and lease_state(name)[0] == "free"
    await a.aclose()


async def test_wait_runs_out():
    name = unique("lib_wait")
    async with singleton_lock.AsyncElector(name, ttl="5s") as holder:
        await holder.acquire()
        other = singleton_lock.AsyncElector(name, ttl="5s", wait="300ms")
        with pytest.raises(singleton_lock.WaitExpired, match="still held"):
            await other.acquire()
        assert other.state is State.WAIT_EXPIRED
        await other.aclose()


async def test_run_cancels_the_leader_coroutine_on_loss():
    name = unique("lib_run")
    running, cancelled = asyncio.Event(), asyncio.Event()
    losses = []

    async def main(lease):
        running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def force_release_when_running():
        await running.wait()
        await asyncio.get_running_loop().run_in_executor(None, force_release, name)

    elector = singleton_lock.AsyncElector(name, ttl="30s", on_lost=losses.append)
    releaser = asyncio.ensure_future(force_release_when_running())
    with pytest.raises(singleton_lock.LeaseLost) as lost:
        await asyncio.wait_for(elector.run(main), WAIT)
    await releaser
    assert lost.value.reason is LossReason.REFUSED
    assert cancelled.is_set() and len(losses) == 1 and losses[0].loss_reason is LossReason.REFUSED
    await elector.aclose()


async def test_run_releases_when_main_returns_or_is_cancelled():
    name = unique("lib_run2")
    elector = singleton_lock.AsyncElector(name, ttl="5s")

    async def main(lease):
        return lease.token

    token = await elector.run(main)
    assert token and lease_state(name)[0] == "free"
    task = asyncio.ensure_future(elector.run(lambda lease: asyncio.sleep(3600)))
    assert await _eventually(lambda: elector.state is State.LEADER)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lease_state(name)[0] == "free", "a cancelled run() must release"
    await elector.aclose()


async def test_a_broken_connection_is_noticed_at_once():
    """ttl 60 s: the next heartbeat is 20 s away; the loss must not wait for it."""
    name = unique("lib_conn")
    async with singleton_lock.AsyncElector(name, ttl="60s") as elector:
        lease = await elector.acquire()
        pid = lease_state(name)[1]
        t0 = time.monotonic()
        with admin() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert await lease.wait_lost() is LossReason.CONNECTION_LOST
        print(f"\n[library] holding connection terminated -> lost: {ms(time.monotonic() - t0)}")
        assert time.monotonic() - t0 < 20, "noticed only at the next heartbeat"


async def test_a_hung_heartbeat_does_not_delay_the_step_down():
    """The holder's backend hangs (SIGSTOP): the heartbeat never returns, yet the
    lease counts as lost before the server's expiry (grace + margin ahead)."""
    name = unique("lib_hung")
    lost_wall = []
    async with singleton_lock.AsyncElector(
            name, ttl="4s", grace="1s", on_lost=lambda _: lost_wall.append(time.time())) as elector:
        lease = await elector.acquire()
        backend = lease_state(name)[1]
        os.kill(backend, signal.SIGSTOP)  # the server side of our connection hangs
        try:
            t0 = time.monotonic()
            reason = await asyncio.wait_for(lease.wait_lost(), WAIT)
            print(f"\n[library] backend hung -> lost ({reason}): {ms(time.monotonic() - t0)} "
                  "(ttl 4s, grace 1s)")
            assert reason is LossReason.DEADLINE
            # Same host, same clock: the loss was declared before the server-side expiry.
            assert lost_wall[0] < lease.expires_at.timestamp(), "stepped down after the expiry"
        finally:
            os.kill(backend, signal.SIGCONT)


async def test_abandoned_calls_are_cancelled_in_the_server():
    elector_options = singleton_lock.AsyncElector("x").options
    link = await Link.open(elector_options.conninfo, 10)
    pid = link.backend_pid
    with pytest.raises(ReplyTimeout):
        await link.execute("SELECT pg_sleep(3600)", None, 0.3)
    assert await _eventually(lambda: backend_gone(pid)), "the timed-out query kept running"

    link = await Link.open(elector_options.conninfo, 10)
    pid = link.backend_pid
    call = asyncio.ensure_future(link.execute("SELECT pg_sleep(3600)", None, 3600))
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await _eventually(lambda: backend_gone(pid)), "the cancelled query kept running"


async def test_standby_stop_cancels_its_waiting_acquire():
    name = unique("lib_stop")
    async with singleton_lock.AsyncElector(name, ttl="5s") as holder:
        await holder.acquire()
        standby = singleton_lock.AsyncElector(name, ttl="5s")
        waiting = asyncio.ensure_future(standby.acquire())
        assert await _eventually(lambda: standby.state is State.STANDBY)
        await standby.aclose()
        with pytest.raises(singleton_lock.ElectorClosed):
            await waiting
        assert holder.lease is not None and holder.lease.held


async def test_fatal_errors_are_clear():
    db = unique("noext")
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
        conn.execute("DROP ROLE IF EXISTS regress_py_nogrant")
        conn.execute("CREATE ROLE regress_py_nogrant LOGIN")
    try:
        no_ext = singleton_lock.AsyncElector("n", dsn=tcp_dsn(dbname=db))
        with pytest.raises(singleton_lock.ExtensionMissingError, match="CREATE EXTENSION"):
            await no_ext.acquire()
        assert no_ext.state is State.FAILED
        no_grant = singleton_lock.AsyncElector("n", dsn=tcp_dsn(user="regress_py_nogrant"))
        with pytest.raises(singleton_lock.PermissionDeniedError) as denied:
            await no_grant.acquire()
        assert denied.value.sqlstate == "42501"
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            conn.execute("DROP ROLE regress_py_nogrant")


async def test_assert_held_fences_a_transaction():
    name = unique("lib_fence")
    elector = singleton_lock.AsyncElector(name, ttl="5s")
    lease = await elector.acquire()
    async with await psycopg.AsyncConnection.connect("", prepare_threshold=None) as conn:
        async with conn.transaction():
            await lease.assert_held(conn)
        await elector.release()
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="not held"):
            async with conn.transaction():
                await lease.assert_held(conn)


def test_blocking_elector():
    name = unique("lib_sync")
    losses = []
    first = singleton_lock.Elector(name, ttl="2s")
    lease = first.acquire()
    second_lease = []
    second = singleton_lock.Elector(name, ttl="2s", on_lost=losses.append)
    waiter = threading.Thread(target=lambda: second_lease.append(second.acquire()))
    waiter.start()
    assert wait_until(lambda: second.state is State.STANDBY)
    time.sleep(2.5)  # heartbeats run on the elector's own thread
    assert lease.held and first.token == lease.token
    first.close()
    waiter.join(WAIT)
    assert lease.lost.is_set() and second_lease and second_lease[0].token > lease.token
    force_release(name)
    assert second_lease[0].lost.wait(WAIT) and len(losses) == 1
    with pytest.raises(singleton_lock.LeaseLost):
        second_lease[0].check()
    second.close()


async def _eventually(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.get_running_loop().run_in_executor(None, predicate):
            return True
        await asyncio.sleep(0.02)
    return False


def test_a_blocked_blocking_acquire_is_interruptible():
    name = unique("lib_intr")
    holder = singleton_lock.Elector(name, ttl="5s")
    holder.acquire()
    waiter = singleton_lock.Elector(name, ttl="5s")

    def interrupt(signum, frame):
        raise TimeoutError("interrupted by the test")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(TimeoutError):
            waiter.acquire()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert wait_until(lambda: waiter.state is not State.STANDBY), "the waiting call kept running"
    assert waiter.lease is None and holder.lease is not None
    waiter.close()
    holder.close()
