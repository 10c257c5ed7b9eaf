"""A leader whose fenced work never pauses can still step down: its release
queues the fenced transactions that begin after it (the extension's fence
queue), waits only for the ones already open, and the standby takes over.
Before: PostgreSQL let every new FOR KEY SHARE row lock join while the
release's FOR UPDATE waited, so three workers asserting back to back held the
release back until they stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from typing import List, Tuple

import psycopg
import psycopg.sql
import pytest

import singleton_lock

from harness import WAIT, admin, unique, wait_until

pytestmark = pytest.mark.usefixtures("extension")

WORKERS = 3
WORK_SECONDS = 0.3  # each fenced transaction; started 0.1 s apart, so they always overlap


class FencedWorkers:
    """Threads that each run fenced transactions back to back, each
    `singleton_assert(name, token)` then WORK_SECONDS of work, until stopped,
    recording (start, end, 'held' or 'refused') for every one."""

    def __init__(self, name: str, token: int) -> None:
        self.name, self.token = name, token
        self.stop = threading.Event()
        self.results: List[List[Tuple[float, float, str]]] = [[] for _ in range(WORKERS)]
        self.errors: List[BaseException] = []
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True)
                        for i in range(WORKERS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
            time.sleep(WORK_SECONDS / WORKERS)

    def _work(self, index: int) -> None:
        try:
            with admin() as conn:
                while not self.stop.is_set():
                    self.results[index].append(self._one(conn))
        except BaseException as error:  # (for the test to see)
            self.errors.append(error)

    def _one(self, conn: psycopg.Connection) -> Tuple[float, float, str]:
        began = time.monotonic()
        try:
            conn.execute("SELECT singleton_assert(%s, %s), pg_sleep(%s)",
                         (self.name, self.token, WORK_SECONDS))
            outcome = "held"
        except psycopg.errors.ObjectNotInPrerequisiteState:
            outcome = "refused"
        return began, time.monotonic(), outcome

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(WAIT)
        assert self.errors == []

    def held_everywhere(self) -> bool:
        return all(any(r[2] == "held" for r in rs) for rs in self.results)


async def test_fenced_work_that_never_pauses_does_not_hold_a_release_back():
    name = unique("queue")
    leader = singleton_lock.AsyncElector(name, ttl="20s")
    lease = await asyncio.wait_for(leader.acquire(), WAIT)
    standby = singleton_lock.AsyncElector(name, ttl="20s")
    waiting = asyncio.ensure_future(standby.acquire())
    workers = FencedWorkers(name, lease.token)
    workers.start()
    try:
        assert await asyncio.to_thread(wait_until, workers.held_everywhere), \
            f"the workers did not begin: {workers.errors}"
        asked = time.monotonic()
        # Well under the ttl: without the queue the release waits for the
        # workers, which go on until this test stops them.
        released = await asyncio.wait_for(leader.release(), 10)
        done = time.monotonic()
        assert released is True  # (the workers run on until `finally`)
        taken = await asyncio.wait_for(waiting, WAIT)
        assert taken.token > lease.token
        # Let each worker try again once the lease has moved.
        assert await asyncio.to_thread(wait_until, lambda: all(
            any(r[0] > done for r in rs) for rs in workers.results))
    finally:
        workers.finish()
        await standby.aclose()
        await leader.aclose()
    outcomes = [r for rs in workers.results for r in rs]
    # No fenced transaction begun after the release held the lease (that the
    # open ones end before the lease moves is the isolation specs' part).
    assert all(began < done for began, _, outcome in outcomes if outcome == "held")
    assert all(outcome == "refused" for began, _, outcome in outcomes if began > done)
    print(f"release took {(done - asked) * 1000:.1f} ms with {WORKERS} workers asserting "
          f"({len(outcomes)} fenced transactions)")


def writer_sleeping(name: str) -> bool:
    with admin() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                            "AND query LIKE %s", (f"%singleton_assert('{name}'%",)).fetchone()[0] == 1


async def test_a_killed_writer_holds_no_release_back_with_client_connection_check_interval():
    """docs/deploying.md recommends client_connection_check_interval for the
    roles whose transactions call singleton_assert: a writer killed in the
    middle of a fenced statement (a COMMAND killed by its wrapper) leaves that
    statement running, and the release waits for it. With the setting the
    server ends it within the interval. (With "0", its default, the release
    ran out of time here; by hand: 19.6 s for a 20 s statement.)"""
    name = unique("killed")
    leader = singleton_lock.AsyncElector(name, ttl="20s")
    lease = await asyncio.wait_for(leader.acquire(), WAIT)
    writer = subprocess.Popen(
        ["psql", "-XAtq", "-c",
         f"SELECT singleton_assert('{name}', {lease.token}), pg_sleep(60)"],
        env={**os.environ, "PGOPTIONS": "-c client_connection_check_interval=200ms"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert await asyncio.to_thread(wait_until, lambda: writer_sleeping(name)), \
            "the fenced statement did not begin"
        os.kill(writer.pid, signal.SIGKILL)
        assert await asyncio.wait_for(leader.release(), 10) is True
        assert not writer_sleeping(name)
    finally:
        writer.kill()
        writer.wait()
        await leader.aclose()


def leased(name: str) -> int:
    with admin("options='-c singleton_lock.bind_session=off'") as conn:
        return conn.execute("SELECT token FROM singleton_acquire(%s, '1 min', 'h')",
                            (name,)).fetchone()[0]


def test_the_queue_holds_nothing_after_a_refused_assert_or_a_cancelled_release():
    """The fence queue's locks end with the (sub)transaction that took them:
    a refused assert caught in a PL/pgSQL block leaves no share lock behind
    (a release goes through while that transaction stays open), and a release
    cancelled while it waits (here its statement_timeout) leaves no exclusive
    request behind (a new fenced transaction passes at once)."""
    name = unique("queue_errors")
    token = leased(name)
    with admin() as caught:
        caught.execute("BEGIN")
        caught.execute(psycopg.sql.SQL(
            "DO $$ BEGIN PERFORM singleton_assert({}, {}); "
            "EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END $$").format(
                name, token + 1))  # (a wrong token: refused, caught)
        with admin("options='-c statement_timeout=5s'") as leader:
            assert leader.execute("SELECT singleton_release(%s, %s)",
                                  (name, token)).fetchone()[0] is True
        caught.execute("ROLLBACK")

    token = leased(name)
    with admin() as open_work:
        open_work.execute("BEGIN")
        open_work.execute("SELECT singleton_assert(%s, %s)", (name, token))
        with admin("options='-c statement_timeout=300'") as leader:
            with pytest.raises(psycopg.errors.QueryCanceled):
                leader.execute("SELECT singleton_release(%s, %s)", (name, token))
        with admin("options='-c statement_timeout=5s'") as later:
            later.execute("SELECT singleton_assert(%s, %s)", (name, token))  # not queued
        open_work.execute("COMMIT")
