"""What an elector reports: its states, why a lease was lost, and the lease."""

from __future__ import annotations

import asyncio
import enum
import logging
from datetime import datetime
from typing import Any, Callable, List, Optional

from .errors import LeaseLost
from .sql import Statements

log = logging.getLogger("singleton_lock")


class State(enum.Enum):
    IDLE = "idle"  # not started
    CONNECTING = "connecting"  # no usable connection yet (or backing off after an error)
    STANDBY = "standby"  # connected, someone else holds the lease, waiting for it
    LEADER = "leader"  # we hold the lease
    RELEASING = "releasing"  # release in progress
    # Terminal states of one round (acquire() may start another):
    RELEASED = "released"
    LOST = "lost"
    WAIT_EXPIRED = "wait_expired"
    FAILED = "failed"  # a non-retryable error (extension missing, permission denied, ...)
    STOPPED = "stopped"  # closed while waiting

    @property
    def terminal(self) -> bool:
        return self in (State.RELEASED, State.LOST, State.WAIT_EXPIRED, State.FAILED,
                        State.STOPPED)


class LossReason(enum.Enum):
    REFUSED = "refused"  # heartbeat NULL: expired, taken over, force-released
    DEADLINE = "deadline"  # no confirmed heartbeat in time: the local deadline rule
    CONNECTION_LOST = "connection lost"  # the holding connection broke

    def __str__(self) -> str:
        return self.value


class Lease:
    """Our tenure of a lease. `token` is the fencing token: pass it to
    singleton_assert (see assert_held) or to any downstream system that can
    reject stale writers. `lost` is set the moment the lease may no longer be
    assumed; stop acting on it by then. `step_down_requested` is set when a
    waiter of higher priority asks for the lease (extension 1.1): stop the
    work and release, and the release hands the lease to that waiter."""

    def __init__(self, name: str, holder: str, token: int, expires_at: Optional[datetime],
                 statements: Statements, step_down_at: Callable[[], float],
                 grace: float) -> None:
        self.name = name
        self.holder = holder
        self.token = token
        self.expires_at = expires_at  # server time of the last acquire/heartbeat
        self.grace = grace  # seconds the work has to stop once `lost` is set
        self.lost = asyncio.Event()
        self.step_down_requested = asyncio.Event()
        self.loss_reason: Optional[LossReason] = None
        self.loss_detail = ""
        self._statements = statements
        self._step_down_at = step_down_at
        self._loss_callbacks: List[Callable[["Lease"], None]] = []
        self._end_callbacks: List[Callable[["Lease"], None]] = []  # loss or release
        self._step_down_callbacks: List[Callable[["Lease"], None]] = []

    def __repr__(self) -> str:
        state = f"lost: {self.loss_reason}" if self.lost.is_set() else "held"
        return f"<Lease {self.name!r} token={self.token} {state}>"

    @property
    def held(self) -> bool:
        return not self.lost.is_set()

    @property
    def schema(self) -> Optional[str]:
        """The extension's schema, to name in your own SQL (for instance
        "public".singleton_assert in a fenced statement): never resolve our
        functions through the search_path (docs/security.md)."""
        return self._statements.schema

    @property
    def step_down_at(self) -> float:
        """time.monotonic() value at which the lease counts as lost unless a
        heartbeat is confirmed before (the local deadline rule)."""
        return float("-inf") if self.lost.is_set() else self._step_down_at()

    def check(self) -> None:
        """Raise LeaseLost if the lease was lost or released."""
        if self.lost.is_set():
            raise LeaseLost(self.loss_reason or "released", self.loss_detail)

    async def wait_lost(self) -> Optional[LossReason]:
        """Wait until the tenure ends; its LossReason, or None if we released it."""
        await self.lost.wait()
        return self.loss_reason

    async def assert_held(self, conn: Any) -> None:
        """Run singleton_assert(name, token) on `conn` (a psycopg AsyncConnection),
        inside the caller's transaction: the transaction is fenced off (SQLSTATE
        55000) unless this lease is still ours, and a takeover waits for it."""
        await conn.execute(self._statements.assert_held, (self.name, self.token))

    def add_loss_callback(self, callback: Callable[["Lease"], None]) -> None:
        """Call `callback(lease)` when the lease is lost (at once if it already
        was), not when we release it."""
        if self.lost.is_set() and self.loss_reason is not None:
            callback(self)
        elif not self.lost.is_set():
            self._loss_callbacks.append(callback)

    def add_step_down_callback(self, callback: Callable[["Lease"], None]) -> None:
        """Call `callback(lease)` when a waiter of higher priority asks for the
        lease (at once if one already did while the lease is held)."""
        if self.step_down_requested.is_set():
            if not self.lost.is_set():
                callback(self)
        else:
            self._step_down_callbacks.append(callback)

    @property
    def released(self) -> bool:
        """True once we gave the lease up ourselves (lost is set, loss_reason None)."""
        return self.lost.is_set() and self.loss_reason is None

    def _on_end(self, callback: Callable[["Lease"], None]) -> None:
        """Internal: call `callback(lease)` when the tenure ends, lost or released."""
        if self.lost.is_set():
            callback(self)
        else:
            self._end_callbacks.append(callback)

    def _request_step_down(self) -> None:
        """Internal: a waiter of higher priority asks for the lease."""
        if self.step_down_requested.is_set() or self.lost.is_set():
            return
        self.step_down_requested.set()
        self._run_callbacks(self._step_down_callbacks, "step-down")

    def _run_callbacks(self, callbacks: List[Callable[["Lease"], None]], what: str) -> None:
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # a callback's bug must not stop the others
                log.exception("lease %r: %s callback failed", self.name, what)

    def _end(self, reason: Optional[LossReason], detail: str) -> None:
        """The tenure is over: lost for `reason`, or released (reason None: the
        loss callbacks are not called)."""
        if self.lost.is_set():
            return
        self.loss_reason, self.loss_detail = reason, detail
        self.lost.set()
        callbacks = self._end_callbacks + (self._loss_callbacks if reason is not None else [])
        self._run_callbacks(callbacks, "loss")
