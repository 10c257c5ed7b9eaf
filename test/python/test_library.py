"""The singleton_lock Python library against the real server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from datetime import timedelta

import psycopg
import pytest

import singleton_lock
import singleton_lock.keeper
from singleton_lock import LossReason, State
from singleton_lock.link import Link, ReplyTimeout

from harness import (PYTHON, ROOT, WAIT, Gate, LogLines, SilentHost, admin, lease_state, ms,
                     plant_acquire_trap, scratch_database, tcp_dsn, unique, wait_until,
                     wait_until_async)

pytestmark = pytest.mark.usefixtures("extension")


def force_release(name: str) -> None:
    with admin() as conn:
        conn.execute("SELECT singleton_force_release(%s)", (name,))


def backend_gone(pid: int) -> bool:
    with admin() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone() == (0,)


def leader_until_cancelled():
    """A leader coroutine for run() that works until it is cancelled, and two
    events: (main, running: set when it starts, cancelled: set when cancelled)."""
    running, cancelled = asyncio.Event(), asyncio.Event()

    async def main(lease):
        running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
    return main, running, cancelled


async def test_handover_heartbeats_and_tokens():
    name = unique("lib")
    a = singleton_lock.AsyncElector(name, ttl="1s")
    b = singleton_lock.AsyncElector(name, ttl="1s")
    lease_a = await a.acquire()
    assert a.state is State.LEADER and a.token == lease_a.token
    waiting = asyncio.ensure_future(b.acquire())
    assert await wait_until_async(lambda: b.state is State.STANDBY)
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
    main, running, cancelled = leader_until_cancelled()
    losses = []

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
    assert await wait_until_async(lambda: elector.state is State.LEADER)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lease_state(name)[0] == "free", "a cancelled run() must release"
    await elector.aclose()


def slow_to_stop(seconds: float):
    """A leader coroutine for run() whose cleanup, once cancelled, takes
    `seconds`: (main, running: set when it starts, stopped_at: [when it stopped])."""
    running, stopped_at = asyncio.Event(), []

    async def main(lease):
        running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(seconds)  # cleanup that outlives the grace
            stopped_at.append(time.monotonic())
            raise
    return main, running, stopped_at


@pytest.mark.parametrize("cancels", [1, 3])
async def test_a_leader_coroutine_slower_than_its_grace_keeps_the_lease_until_it_stops(cancels):
    """run() is cancelled (as on SIGTERM) while its leader coroutine needs 2 s
    to stop, eight times the grace (ttl 1 s, grace 250 ms). The lease is not
    released while that code still runs: heartbeats keep it past the ttl, the
    standby keeps waiting, and it leads only after the coroutine has stopped.
    With cancels=3, run() is cancelled again within the grace (+0.1 s) and
    while the lease is held past it (+0.6 s): still no release before the
    coroutine stops, and run() raises CancelledError only then."""
    name = unique(f"lib_slow_stop{cancels}")
    main, running, stopped_at = slow_to_stop(2.0)
    leader = singleton_lock.AsyncElector(name, ttl="1s")
    standby = singleton_lock.AsyncElector(name, ttl="1s")
    run = asyncio.ensure_future(leader.run(main))
    await asyncio.wait_for(running.wait(), WAIT)
    lease = leader.lease
    waiting = asyncio.ensure_future(standby.acquire())
    assert await wait_until_async(lambda: standby.state is State.STANDBY)
    run.cancel()
    if cancels > 1:
        await asyncio.sleep(0.1)
        run.cancel()  # within the grace
        await asyncio.sleep(0.5)
        assert not run.done(), "run() ended while its coroutine still ran"
        run.cancel()  # while held past the grace
        await asyncio.sleep(0.9)
    else:
        await asyncio.sleep(1.5)  # past the grace, and past the lease's ttl
    assert not stopped_at and not waiting.done(), "the standby led while the old code ran"
    assert not run.done(), "run() ended while its coroutine still ran"
    assert lease.held and lease_state(name)[0] == "held"
    standby_lease = await asyncio.wait_for(waiting, WAIT)
    led_at = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert stopped_at and stopped_at[0] <= led_at, "the standby led before the old code stopped"
    assert lease.released and standby_lease.token > lease.token
    await standby.aclose()
    await leader.aclose()


async def test_a_second_stop_signal_cancels_main_again():
    """run_as_leader's main ignores its first cancel (SIGTERM): the lease
    stays held past the grace while it runs. A second SIGTERM cancels it
    again; it stops, the lease is released and run_as_leader returns None.
    (Before, the second signal was ignored: only SIGKILL ended the process.
    The test then lets main return by itself, so that it fails, not hangs.)"""
    name = unique("lib_second_signal")
    cancels, leading, give_up = [], asyncio.Event(), asyncio.Event()

    async def stubborn(lease):
        leading.set()
        while not give_up.is_set():
            try:
                await give_up.wait()
            except asyncio.CancelledError:
                cancels.append(time.monotonic())
                if len(cancels) > 1:
                    raise

    runner = asyncio.ensure_future(singleton_lock.run_as_leader(name, stubborn, ttl="1s"))
    await asyncio.wait_for(leading.wait(), WAIT)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await wait_until_async(lambda: len(cancels) == 1)
    await asyncio.sleep(0.5)  # twice the grace (250 ms): main still runs, the lease stays held
    assert not runner.done() and lease_state(name)[0] == "held"
    os.kill(os.getpid(), signal.SIGTERM)
    done, _ = await asyncio.wait({runner}, timeout=10)
    give_up.set()
    assert done, "the second SIGTERM did not stop main"
    assert runner.result() is None
    assert len(cancels) == 2 and lease_state(name)[0] == "free"


async def test_after_a_loss_run_returns_only_once_its_slow_coroutine_has_stopped():
    """The lease is lost (an administrator's force release) while the leader
    coroutine needs 2 s to stop: run() raises LeaseLost only once it has
    stopped, so run_as_leader cannot lead again beside it."""
    name = unique("lib_slow_loss")
    main, running, stopped_at = slow_to_stop(2.0)
    elector = singleton_lock.AsyncElector(name, ttl="1s")
    run = asyncio.ensure_future(elector.run(main))
    await asyncio.wait_for(running.wait(), WAIT)
    await asyncio.get_running_loop().run_in_executor(None, force_release, name)
    with pytest.raises(singleton_lock.LeaseLost):
        await asyncio.wait_for(run, WAIT)
    assert stopped_at, "run() raised LeaseLost while its coroutine still ran"
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
    assert await wait_until_async(lambda: backend_gone(pid)), "the timed-out query kept running"

    link = await Link.open(elector_options.conninfo, 10)
    pid = link.backend_pid
    call = asyncio.ensure_future(link.execute("SELECT pg_sleep(3600)", None, 3600))
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await wait_until_async(lambda: backend_gone(pid)), "the cancelled query kept running"


async def test_a_cancel_wins_over_a_reply_that_came_in_meanwhile():
    """Before Python 3.12, asyncio.wait_for returns a result that came in while
    its caller was being cancelled, and the cancel is lost: a standby stopped
    by SIGTERM just as a release handed it the lease led on and never exited.
    Swept over the loop iterations between the reply's arrival and the
    caller's resumption: every cancel that was accepted ends the call."""
    conninfo = singleton_lock.AsyncElector("x").options.conninfo
    swallowed = []
    for spins in range(16):
        link = await Link.open(conninfo, 10)
        try:
            call = asyncio.ensure_future(link.execute("SELECT 1", None, 10))
            for _ in range(8):  # let it send the query
                await asyncio.sleep(0)
            time.sleep(0.05)  # the reply is in; this loop has not looked yet
            for _ in range(spins):
                await asyncio.sleep(0)
            accepted = call.cancel()
            try:
                await call
            except asyncio.CancelledError:
                continue
            if accepted:
                swallowed.append(spins)
        finally:
            link.close()
    assert not swallowed, f"cancels lost after {swallowed} loop iterations"


async def test_a_cancel_while_abandon_waits_for_its_cancel_request_is_raised():
    """abandon() waits up to 0.2 s for its cancel request to reach the server.
    A cancel of its caller meanwhile (e.g. the SIGTERM that stops a standby
    whose call had just timed out) must be raised, not swallowed, and the
    connection still closed."""
    conninfo = singleton_lock.AsyncElector("x").options.conninfo
    for _ in range(5):
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        abandoning = asyncio.ensure_future(singleton_lock.abandon(conn, busy=True))
        await asyncio.sleep(0)  # it has sent its cancel request from a thread and waits
        assert abandoning.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoning
        assert conn.closed


async def test_standby_stop_cancels_its_waiting_acquire():
    name = unique("lib_stop")
    async with singleton_lock.AsyncElector(name, ttl="5s") as holder:
        await holder.acquire()
        standby = singleton_lock.AsyncElector(name, ttl="5s")
        waiting = asyncio.ensure_future(standby.acquire())
        assert await wait_until_async(lambda: standby.state is State.STANDBY)
        await standby.aclose()
        with pytest.raises(singleton_lock.ElectorClosed):
            await waiting
        assert holder.lease is not None and holder.lease.held


async def test_fatal_errors_are_clear():
    """...and in a database without the extension nothing is called by name:
    someone else's singleton_acquire could be found (here one in public that
    records its calls)."""
    with admin() as conn:
        conn.execute("DROP ROLE IF EXISTS regress_py_nogrant")
        conn.execute("CREATE ROLE regress_py_nogrant LOGIN")
    missing = r"not installed in this database \(CREATE EXTENSION singleton_lock\)"
    try:
        with scratch_database("noext", extension=False) as db:
            trapped = plant_acquire_trap(db)
            no_ext = singleton_lock.AsyncElector("n", dsn=tcp_dsn(dbname=db), wait="5s")
            with pytest.raises(singleton_lock.ExtensionMissingError, match=missing):
                await no_ext.acquire()
            assert no_ext.state is State.FAILED
            ranked = singleton_lock.AsyncElector("n", dsn=tcp_dsn(dbname=db), priority=1,
                                                 wait="5s")
            with pytest.raises(singleton_lock.ExtensionMissingError, match=missing):
                await ranked.acquire()
            assert trapped() == 0
        no_grant = singleton_lock.AsyncElector("n", dsn=tcp_dsn(user="regress_py_nogrant"))
        with pytest.raises(singleton_lock.PermissionDeniedError) as denied:
            await no_grant.acquire()
        assert denied.value.sqlstate == "42501"
    finally:
        with admin() as conn:
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


async def test_a_standby_retries_at_once_then_within_the_failover_cap():
    """The standby's working connection breaks and the server stays unreachable
    for 3 s (connections refused): the first retry goes out at once, and every
    later delay stays within failover_backoff_max (500 ms) instead of growing
    towards backoff_max (5 s), so it is back soon after the server is."""
    name = unique("lib_failover")
    gate = Gate(int(os.environ["PGPORT"]))
    try:
        async with singleton_lock.AsyncElector(name, ttl="5s") as holder:
            await holder.acquire()
            standby = singleton_lock.AsyncElector(name, ttl="5s", dsn=tcp_dsn(port=gate.port))
            waiting = asyncio.ensure_future(standby.acquire())
            assert await wait_until_async(lambda: standby.state is State.STANDBY)
            with LogLines(r"reconnecting in (\d+) ms") as retries:
                gate.close()
                assert await wait_until_async(lambda: standby.state is State.CONNECTING)
                await asyncio.sleep(3.0)
                accepted = gate.accepted
                gate.open()
                t0 = time.monotonic()
                assert await wait_until_async(lambda: gate.accepted > accepted)
                delays_ms = [int(d) for d in retries.lines]
                print(f"\n[library] standby reconnected {ms(time.monotonic() - t0)} after the "
                      f"server was reachable again; reconnect delays (ms): {delays_ms}")
                assert await wait_until_async(lambda: standby.state is State.STANDBY)
            assert len(delays_ms) >= 3, "the outage did not cause retries"
            assert delays_ms[0] == 0, "the first retry after a working connection waited"
            assert max(delays_ms) <= 500, "a delay grew beyond the failover cap"
            await standby.aclose()
            with pytest.raises(singleton_lock.ElectorClosed):
                await waiting
    finally:
        gate.close()


@pytest.mark.parametrize("accepts", [True, False], ids=["hung-server", "dead-machine"])
async def test_a_silent_first_host_does_not_stall_every_attempt(accepts):
    """host=SILENT,GOOD: psycopg 3.1 applies connect_timeout to the whole
    connection attempt, so the good host was never tried. Now each host gets
    its own timeout, and the silent one moves to the back of the list: the
    next connection (after the leader's connection is killed) goes straight to
    the good host."""
    name = unique("lib_hosts")
    silent = SilentHost(accept=accepts)
    dsn = tcp_dsn(host="127.0.0.1,127.0.0.1", port=f"{silent.port},{os.environ['PGPORT']}",
                  connect_timeout="2")
    elector = singleton_lock.AsyncElector(name, ttl="5s", dsn=dsn, wait="20s")
    try:
        t0 = time.monotonic()
        lease = await elector.acquire()
        print(f"\n[library] leader through host 2 of 2, host 1 silent "
              f"({'accepts, never answers' if accepts else 'never accepts'}, connect_timeout 2s): "
              f"{ms(time.monotonic() - t0)}")
        assert elector.state is State.LEADER
        if accepts:
            assert silent.accepted == 1
        with admin() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (lease_state(name)[1],))
        assert await lease.wait_lost() is LossReason.CONNECTION_LOST
        t0 = time.monotonic()
        lease = await elector.acquire()
        print(f"[library] leader again after its connection was killed: {ms(time.monotonic() - t0)}")
        assert lease.held
        if accepts:
            assert silent.accepted == 1, "the silent host was tried first again"
    finally:
        await elector.aclose()
        silent.close()


async def test_a_silent_first_address_of_a_name_does_not_stall_every_attempt(monkeypatch):
    """host=NAME, whose first address is a member gone from the network (it
    accepts and never answers) and whose second is the server. psycopg gives
    libpq every address of a name in one attempt under one timeout, so every
    attempt timed out at the first address and the second was never tried.
    Now each address is tried alone and the silent one is set aside. (The
    name's addresses come from the event loop's resolver, which psycopg and
    the library both ask, answering here as a hosts file would.)"""
    name = unique("lib_addrs")
    port = int(os.environ["PGPORT"])
    silent = SilentHost(accept=True, address="127.0.0.2", port=port)
    loop = asyncio.get_running_loop()
    real_lookup = loop.getaddrinfo

    async def lookup(host, service, *args, **kwargs):
        if host != "db-two.test":
            return await real_lookup(host, service, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, service or 0))
                for a in ("127.0.0.2", "127.0.0.1")]

    monkeypatch.setattr(loop, "getaddrinfo", lookup)
    elector = singleton_lock.AsyncElector(name, ttl="5s", wait="15s",
                                          dsn=tcp_dsn(host="db-two.test", connect_timeout="2"))
    try:
        t0 = time.monotonic()
        lease = await elector.acquire()
        assert elector.state is State.LEADER
        assert silent.accepted >= 1, "the silent address was never tried: the fault did not apply"
        print(f"\n[library] leader through the second address of a name, the first silent "
              f"(connect_timeout 2s): {ms(time.monotonic() - t0)}")
        with admin() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (lease_state(name)[1],))
        assert await lease.wait_lost() is LossReason.CONNECTION_LOST
        tried = silent.accepted
        t0 = time.monotonic()
        lease = await elector.acquire()
        assert lease.held
        assert silent.accepted == tried, "the silent address was tried first again"
        print(f"[library] leader again after its connection was killed: {ms(time.monotonic() - t0)}")
    finally:
        await elector.aclose()
        silent.close()


async def test_a_waiter_of_higher_priority_takes_over_from_run():
    """run() leads with priority 0; a waiter of equal priority never preempts
    it; a waiter of priority 5 asks it to step down: run() learns it at once
    (singleton_watch), cancels the leader's coroutine, releases, and the
    release hands the lease to that waiter; run() raises SteppedDown."""
    name = unique("lib_prio")
    main, running, cancelled = leader_until_cancelled()
    requests = []

    leader = singleton_lock.AsyncElector(name, ttl="1s", on_step_down=requests.append)
    equal = singleton_lock.AsyncElector(name, ttl="1s")
    better = singleton_lock.AsyncElector(name, ttl="1s", priority=5)
    run = asyncio.ensure_future(leader.run(main))
    await asyncio.wait_for(running.wait(), WAIT)
    lease = leader.lease
    equal_waits = asyncio.ensure_future(equal.acquire())
    assert await wait_until_async(lambda: equal.state is State.STANDBY)
    await asyncio.sleep(1.5)  # several heartbeats and watches: an equal priority never preempts
    assert lease.held and not lease.step_down_requested.is_set() and not run.done()

    t0 = time.monotonic()
    better_lease = await asyncio.wait_for(better.acquire(), WAIT)
    print(f"\n[library] waiter of priority 5 starts -> leads (leader of priority 0 "
          f"stepped down and handed over): {ms(time.monotonic() - t0)}")
    with pytest.raises(singleton_lock.SteppedDown):
        await asyncio.wait_for(run, WAIT)
    assert cancelled.is_set() and lease.released and lease.step_down_requested.is_set()
    assert requests == [lease]
    assert better_lease.token > lease.token and lease_state(name)[0] == "held"
    assert not equal_waits.done() and equal.state is State.STANDBY
    await better.aclose()
    assert (await asyncio.wait_for(equal_waits, WAIT)).token > better_lease.token
    for elector in (leader, equal):
        await elector.aclose()


async def test_step_down_request_without_run_and_release_hands_over():
    """acquire()/release() users get lease.step_down_requested (an asyncio.Event)
    and decide themselves; the lease stays theirs until they release."""
    name = unique("lib_ask")
    leader = singleton_lock.AsyncElector(name, ttl="2s", priority=1)
    lease = await leader.acquire()
    better = singleton_lock.AsyncElector(name, ttl="2s", priority=2)
    waiting = asyncio.ensure_future(better.acquire())
    t0 = time.monotonic()
    await asyncio.wait_for(lease.step_down_requested.wait(), WAIT)
    print(f"\n[library] step-down request noticed: {ms(time.monotonic() - t0)} after the "
          "better waiter started")
    await asyncio.sleep(2.5)  # > ttl: the leader keeps heartbeating until it decides
    assert lease.held and not waiting.done() and lease_state(name)[0] == "held"
    t0 = time.monotonic()
    assert await leader.release() is True
    better_lease = await asyncio.wait_for(waiting, WAIT)
    print(f"[library] release -> the better waiter leads (handoff): {ms(time.monotonic() - t0)}")
    assert better_lease.token > lease.token
    await better.aclose()
    await leader.aclose()


async def test_pause_ends_the_tenure_at_once_and_resume_hands_it_over():
    """ttl 60 s (a heartbeat every 20 s) and no LISTEN: only singleton_watch
    can tell the leader at once that an administrator paused the lease. No
    acquire succeeds while paused; resume hands the lease to the waiter."""
    name = unique("lib_pause")
    leader = singleton_lock.AsyncElector(name, ttl="60s", listen=False)
    started = time.monotonic()  # the first heartbeat is due 20 s after the acquire was sent
    lease = await leader.acquire()
    standby = singleton_lock.AsyncElector(name, ttl="60s", listen=False)
    waiting = asyncio.ensure_future(standby.acquire())
    assert await wait_until_async(lambda: standby.state is State.STANDBY)
    t0 = time.monotonic()
    with admin() as conn:
        conn.execute("SELECT singleton_pause(%s, 'maintenance')", (name,))
    assert await asyncio.wait_for(lease.wait_lost(), WAIT) is LossReason.REFUSED
    print(f"\n[library] paused -> leader lost: {ms(time.monotonic() - t0)} (ttl 60s)")
    assert time.monotonic() - started < 20, "noticed only at the next heartbeat"
    await asyncio.sleep(1.5)
    assert not waiting.done() and lease_state(name)[0] == "paused"
    t0 = time.monotonic()
    with admin() as conn:
        conn.execute("SELECT singleton_resume(%s)", (name,))
    resumed = await asyncio.wait_for(waiting, WAIT)
    print(f"[library] resumed -> the standby leads: {ms(time.monotonic() - t0)}")
    assert resumed.token > lease.token
    await standby.aclose()
    await leader.aclose()


LEADER_SCRIPT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import singleton_lock, singleton_lock.keeper
singleton_lock.keeper.WATCH_MAX = 5.0  # (the server's wait wakes every ~10 s for reasons of its own)
async def main():
    lease = await singleton_lock.AsyncElector(sys.argv[2], ttl="600s").acquire()
    print(f"leader {lease.token}", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_a_killed_leader_frees_the_lease_while_its_watch_waits(spawn):
    """A leader process is killed (-9) just after its backend started a 5 s
    singleton_watch: its session ends at once (the server's wait watches the
    client socket too; before that, the session and the lease bound to it
    outlived the process until the watch ended), so the standby's tenure
    begins before that watch would have ended (both server times)."""
    name = unique("lib_kill")
    leader = spawn([PYTHON, "-c", LEADER_SCRIPT, str(ROOT / "python"), name], "leader")
    assert leader.next_leader(), "the leader process did not lead"
    backend = lease_state(name)[1]

    async def standby_takes_over():
        async with singleton_lock.AsyncElector(name, ttl="60s") as standby:
            waiting = asyncio.ensure_future(standby.acquire())
            assert await wait_until_async(lambda: standby.state is State.STANDBY)
            watch_started = await _poll(lambda: _fresh_watch(backend))
            assert watch_started, "the leader's backend never started a watch"
            t0 = time.monotonic()
            leader.signal(signal.SIGKILL)
            await asyncio.wait_for(waiting, WAIT)
            print(f"\n[library] leader killed during its watch -> standby leads: "
                  f"{ms(time.monotonic() - t0)}")
        return watch_started

    watch_started = asyncio.run(standby_takes_over())
    with admin() as conn:
        taken_at = conn.execute("SELECT acquired_at FROM singleton_leases WHERE name = %s",
                                (name,)).fetchone()[0]
    assert taken_at < watch_started + timedelta(seconds=5), \
        "the lease outlived its killed holder until the holder's watch ended"


def _fresh_watch(pid: int):
    """query_start of the backend's singleton_watch if it began less than 1 s ago."""
    with admin() as conn:
        row = conn.execute(
            "SELECT query_start FROM pg_stat_activity WHERE pid = %s AND wait_event_type = "
            "'Extension' AND query LIKE '%%singleton_watch%%' "
            "AND clock_timestamp() - query_start < interval '1 second'", (pid,)).fetchone()
    return row[0] if row else None


async def _poll(probe, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.get_running_loop().run_in_executor(None, probe)
        if value:
            return value
        await asyncio.sleep(0.02)
    return None


async def test_extension_1_0_keeps_working_and_priority_is_refused_clearly():
    """A database with extension version 1.0 (no priorities, no singleton_watch):
    the elector leads, heartbeats and releases as before; a non-zero priority
    is refused with a clear error instead of a missing-function error."""
    db = unique("ext10")
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        with psycopg.connect(tcp_dsn(dbname=db), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION singleton_lock VERSION '1.0'")
            assert conn.execute("SELECT to_regproc('singleton_watch')").fetchone() == (None,)
        name = unique("lib_10")
        leader = singleton_lock.AsyncElector(name, ttl="1s", dsn=tcp_dsn(dbname=db))
        lease = await leader.acquire()
        await asyncio.sleep(1.5)  # heartbeats; a call to a missing function would have lost it
        assert lease.held
        standby = singleton_lock.AsyncElector(name, ttl="1s", dsn=tcp_dsn(dbname=db))
        waiting = asyncio.ensure_future(standby.acquire())
        assert await wait_until_async(lambda: standby.state is State.STANDBY)
        assert await leader.release() is True
        assert (await asyncio.wait_for(waiting, WAIT)).token > lease.token
        await standby.aclose()
        ranked = singleton_lock.AsyncElector(name, ttl="1s", dsn=tcp_dsn(dbname=db), priority=3)
        with pytest.raises(singleton_lock.UsageError, match="priority 3 needs singleton_lock 1.1"):
            await ranked.acquire()
        assert ranked.state is State.FAILED
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')


def test_blocking_elector_step_down_request():
    name = unique("lib_sync_ask")
    asked = []
    first = singleton_lock.Elector(name, ttl="2s", on_step_down=asked.append)
    lease = first.acquire()
    better = singleton_lock.Elector(name, ttl="2s", priority=1)
    got = []
    waiter = threading.Thread(target=lambda: got.append(better.acquire()))
    waiter.start()
    assert lease.step_down_requested.wait(WAIT), "no step-down request reached the blocking API"
    assert asked == [lease] and lease.held
    assert first.release() is True
    waiter.join(WAIT)
    assert got and got[0].token > lease.token and not got[0].step_down_requested.is_set()
    better.close()
    first.close()


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


async def test_notify_spam_is_heeded_at_most_every_100_ms(monkeypatch):
    """Any role may NOTIFY the channel singleton_lock. A leader that cannot
    watch (no EXECUTE on singleton_watch) heartbeats when a notification names
    its lease, but at most once per 100 ms: a loop of NOTIFYs made it heartbeat
    once per notification."""
    role = unique("spam_role")
    name = unique("lib_spam")
    with admin() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute("GRANT EXECUTE ON FUNCTION singleton_acquire(text, interval, text, interval, "
                     "integer), singleton_heartbeat(text, bigint, interval), "
                     f"singleton_release(text, bigint), singleton_bind(text, bigint) TO {role}")
    beats = []
    heartbeat = singleton_lock.keeper.Keeper._heartbeat

    async def counted(self):  # type: ignore[no-untyped-def]
        beats.append(time.monotonic())
        await heartbeat(self)
    monkeypatch.setattr(singleton_lock.keeper.Keeper, "_heartbeat", counted)
    stop = threading.Event()

    def spam() -> None:
        with admin() as conn:
            while not stop.is_set():
                conn.execute(f"NOTIFY singleton_lock, '{name}'")
    leader = singleton_lock.AsyncElector(name, ttl="30s", dsn=f"user={role}")
    spammer = threading.Thread(target=spam)
    try:
        await leader.acquire()
        spammer.start()
        await asyncio.sleep(0.3)
        n0, t0 = len(beats), time.monotonic()
        await asyncio.sleep(2.0)
        n, window = len(beats) - n0, time.monotonic() - t0
        print(f"\n[library] NOTIFY spam: {n} heartbeats in {ms(window)}")
        assert n >= 3, "the notifications did not reach the leader"
        assert n <= window / 0.1 + 3, f"{n} heartbeats in {ms(window)} of NOTIFY spam"
    finally:
        stop.set()
        if spammer.is_alive():
            spammer.join()
        await leader.aclose()
        with admin() as conn:
            conn.execute(f"DROP OWNED BY {role}")  # (its grants)
            conn.execute(f"DROP ROLE {role}")


async def test_reconnects_of_a_standby_leave_no_descriptor_behind():
    """A standby may wait through months of database restarts: each of 12
    terminations of its session is followed by a reconnect, and the process's
    descriptors after round 12 are those after round 2."""
    name = unique("lib_fds")
    with admin() as conn:
        conn.execute("SET singleton_lock.bind_session = off")
        conn.execute("SELECT singleton_acquire(%s, '1 h', 'someone-else')", (name,))

    def waiting_backend():
        with admin() as conn:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Extension'"
                " AND application_name = 'singleton_lock.py' AND query LIKE 'SELECT%%'"
                " AND pid <> pg_backend_pid()").fetchall()
        return row[0][0] if len(row) == 1 else None

    elector = singleton_lock.AsyncElector(name, ttl="10s")
    standby = asyncio.ensure_future(elector.acquire())
    loop = asyncio.get_running_loop()
    before = None
    try:
        for round_ in range(1, 13):
            assert await wait_until_async(waiting_backend), f"round {round_}: not waiting"
            pid = await loop.run_in_executor(None, waiting_backend)
            with admin() as conn:
                assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            assert await wait_until_async(lambda: waiting_backend() not in (None, pid)), \
                f"round {round_}: the standby did not wait again after its session ended"
            if round_ == 2:
                before = sorted(os.listdir("/proc/self/fd"))
        after = sorted(os.listdir("/proc/self/fd"))
        assert not standby.done(), "the standby stopped waiting"
        print(f"\n[library] descriptors after round 2: {len(before)}, after round 12: {len(after)}")
        assert len(after) <= len(before), f"descriptors grew: {before} -> {after}"
    finally:
        standby.cancel()
        await elector.aclose()


def postmaster_pid() -> int:
    """The local server's postmaster (from its data directory's postmaster.pid)."""
    with admin() as conn:
        datadir = conn.execute("SHOW data_directory").fetchone()[0]
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        return int(f.readline())


def children_of(parent: int) -> list:
    """Its child processes, from /proc (no database connection: the server may be stopped)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        children.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass  # (ended meanwhile)
    return children


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


async def test_a_frozen_server_ends_the_tenure_by_the_deadline_and_a_standby_leads_after():
    """The whole server hangs (every process SIGSTOPped: a frozen VM, storage
    that stopped answering) for 2 x ttl: the leader's tenure ends by its own
    deadline while the server is still frozen; once it resumes the standby
    leads, with a larger token."""
    if not os.environ.get("SL_IT_RESTART"):
        pytest.skip("needs a private server (SL_IT_RESTART set, as test/run_all.sh does)")
    name = unique("lib_frozen")
    async with singleton_lock.AsyncElector(name, ttl="2s", grace="500ms") as leader, \
            singleton_lock.AsyncElector(name, ttl="2s", grace="500ms") as standby:
        lease = await leader.acquire()
        waiting = asyncio.ensure_future(standby.acquire())
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the standby led while the leader held the lease"
        postmaster = postmaster_pid()
        os.kill(postmaster, signal.SIGSTOP)  # first: it forks no child that would escape
        frozen = [postmaster]
        try:
            frozen += children_of(postmaster)
            for pid in frozen[1:]:
                os.kill(pid, signal.SIGSTOP)
            assert wait_until(lambda: all(process_state(p) == "T" for p in frozen), 5), \
                "the server's processes did not all stop"
            t0 = time.monotonic()
            reason = await asyncio.wait_for(lease.wait_lost(), WAIT)
            lost_after = time.monotonic() - t0
            assert reason is LossReason.DEADLINE, reason
            assert all(process_state(p) == "T" for p in frozen), "the server ran during the freeze"
            assert not waiting.done(), "the standby led while the server was frozen"
            await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - t0)))
        finally:
            for pid in reversed(frozen):  # the postmaster last
                os.kill(pid, signal.SIGCONT)
        t1 = time.monotonic()
        taken = await asyncio.wait_for(waiting, WAIT)
        print(f"\n[library] server frozen -> leader's tenure ended {ms(lost_after)} in "
              f"(ttl 2s, grace 500ms); resumed -> standby led {ms(time.monotonic() - t1)} later")
        assert taken.token > lease.token
        await standby.release()
