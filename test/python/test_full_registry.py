"""More waiters than the shared waiter registry holds (64 for the whole
server): those beyond it still wait and still get the lease, only without a
handoff. 70 sessions wait on one lease; it is released 70 times, each time
by the token of the one that just got it, and each release looks inside its
own transaction whether it handed the lease over (the row names the waiter)
or left it free. Exactly one waiter gets it each time, every waiter once,
with strictly growing tokens; and afterwards the registry's slots are free
again (a new waiter is handed the lease)."""

from __future__ import annotations

import queue
import threading
from typing import List, Optional, Tuple

import psycopg
import pytest

from harness import WAIT, admin, unique, wait_until

pytestmark = pytest.mark.usefixtures("extension")

REGISTRY_SLOTS = 64  # kRegistrySlots in extension/waiter_registry.hpp
WAITERS = REGISTRY_SLOTS + 6


class Waiter(threading.Thread):
    """One session waiting for the lease; once it has it, it reports
    (index, token, holder) and keeps its session (the lease is bound to it)
    until told to go."""

    def __init__(self, index: int, name: str, won: "queue.Queue[Tuple[int, int, str]]") -> None:
        super().__init__(daemon=True)
        self.index, self.name, self.won = index, name, won
        self.go = threading.Event()
        self.error: Optional[BaseException] = None
        self.backend_pid = 0

    def run(self) -> None:
        try:
            with admin() as conn:
                self.backend_pid = conn.info.backend_pid
                holder = f"waiter-{self.index}"
                acquired, token = conn.execute(
                    "SELECT acquired, token FROM singleton_acquire(%s, '1 min', %s, '5 min')",
                    (self.name, holder)).fetchone()
                assert acquired, f"{holder}'s wait ran out"
                self.won.put((self.index, token, holder))
                self.go.wait(WAIT)
        except BaseException as error:  # (for the test to see)
            self.error = error
            self.won.put((self.index, -1, repr(error)))


def release_and_look(conn: psycopg.Connection, name: str, token: int) -> Optional[str]:
    """Releases; returns the waiter the release handed the lease to, None when it left it free."""
    with conn.transaction():
        assert conn.execute("SELECT singleton_release(%s, %s)", (name, token)).fetchone()[0]
        released, holder = conn.execute(
            "SELECT released, holder FROM singleton_lock_leases WHERE name = %s", (name,)).fetchone()
    return None if released else holder


def waiting(pids: List[int]) -> int:
    with admin() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
                            " AND wait_event_type = 'Extension'", (pids,)).fetchone()[0]


def test_waiters_beyond_the_registry_still_get_the_lease_one_at_a_time():
    name = unique("full_registry")
    won: "queue.Queue[Tuple[int, int, str]]" = queue.Queue()
    with admin() as conn:
        conn.execute("SET singleton_lock.bind_session = off")
        token = conn.execute("SELECT token FROM singleton_acquire(%s, '1 h', 'first')",
                             (name,)).fetchone()[0]
        waiters = [Waiter(i, name, won) for i in range(WAITERS)]
        for w in waiters:
            w.start()
        assert wait_until(lambda: all(w.backend_pid for w in waiters) and
                          waiting([w.backend_pid for w in waiters]) == WAITERS), \
            "the waiters never all waited in the server"

        tokens, winners, handed = [token], [], 0
        for round_ in range(WAITERS):
            handed_to = release_and_look(conn, name, tokens[-1])
            if winners:
                waiters[winners[-1]].go.set()  # released: its session may end
            index, new_token, holder = won.get(timeout=WAIT)
            assert new_token != -1, f"waiter {index} failed: {holder}"
            assert handed_to in (None, holder), f"round {round_}: handed to {handed_to}, {holder} got it"
            handed += handed_to is not None
            # Nobody else got it meanwhile (the next release is this one's).
            assert won.empty(), f"round {round_}: a second waiter got the lease: {won.get()}"
            assert new_token > tokens[-1], f"round {round_}: token {new_token} after {tokens[-1]}"
            tokens.append(new_token)
            winners.append(index)
        assert sorted(winners) == list(range(WAITERS)), "not every waiter got the lease once"
        # At most the registry's slots were handed over; the waiters beyond it took a free lease.
        assert 1 <= handed <= REGISTRY_SLOTS, f"{handed} handoffs"
        assert WAITERS - handed >= WAITERS - REGISTRY_SLOTS

        # The slots came back: a new waiter is handed the lease again.
        late = Waiter(WAITERS, name, won)
        late.start()
        assert wait_until(lambda: late.backend_pid and waiting([late.backend_pid]) == 1)
        handed_to = release_and_look(conn, name, tokens[-1])
        waiters[winners[-1]].go.set()
        index, new_token, holder = won.get(timeout=WAIT)
        assert (index, handed_to) == (WAITERS, holder), f"no handoff to the late waiter: {handed_to}"
        conn.execute("SELECT singleton_release(%s, %s)", (name, new_token))
        late.go.set()
    for w in waiters + [late]:
        w.join(WAIT)
        assert w.error is None, f"waiter {w.index}: {w.error!r}"
    print(f"{WAITERS} waiters, {handed} releases handed the lease over, "
          f"{WAITERS - handed} left it free for a waiter beyond the registry")
