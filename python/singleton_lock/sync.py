"""Elector: the blocking API, with the same semantics as AsyncElector (it is
one: an AsyncElector runs on a private event loop thread, which also does the
heartbeats, so the caller's thread is free for the work)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any, Callable, Coroutine, Optional, TypeVar

from .elector import AsyncElector
from .errors import LeaseLost
from .lease import Lease, LossReason, State

T = TypeVar("T")


class SyncLease:
    """A Lease seen from other threads. `lost` is a threading.Event, set when
    the lease is lost or released; check() raises LeaseLost then.
    `step_down_requested` (a threading.Event) is set when a waiter of higher
    priority asks for the lease: finish up and call Elector.release()."""

    def __init__(self, lease: Lease) -> None:
        self._lease = lease
        self.name = lease.name
        self.holder = lease.holder
        self.token = lease.token
        self.schema = lease.schema
        self.lost = threading.Event()
        self.step_down_requested = threading.Event()
        lease._on_end(lambda _: self.lost.set())
        lease.add_step_down_callback(lambda _: self.step_down_requested.set())

    def __repr__(self) -> str:
        return repr(self._lease).replace("<Lease", "<SyncLease", 1)

    @property
    def expires_at(self) -> Optional[datetime]:
        return self._lease.expires_at

    @property
    def held(self) -> bool:
        return not self.lost.is_set()

    @property
    def loss_reason(self) -> Optional[LossReason]:
        return self._lease.loss_reason

    @property
    def step_down_at(self) -> float:
        return self._lease.step_down_at

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(self._lease.loss_reason or "released", self._lease.loss_detail)

    def assert_held(self, conn: Any) -> None:
        """singleton_assert(name, token) on a psycopg (sync) Connection, inside
        the caller's transaction: fenced off (SQLSTATE 55000) unless still ours."""
        conn.execute(self._lease._statements.assert_held, (self.name, self.token))


class Elector:
    """Blocking leader election; the options are AsyncElector's. on_lost(lease)
    and on_step_down(lease) run on the elector's thread: keep them short (set a
    flag, signal a worker)."""

    def __init__(self, name: str, *, on_lost: Optional[Callable[[SyncLease], None]] = None,
                 on_step_down: Optional[Callable[[SyncLease], None]] = None,
                 **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._on_lost = on_lost
        self._on_step_down = on_step_down
        self._lease: Optional[SyncLease] = None
        self._thread = threading.Thread(target=self._loop.run_forever,
                                         name="singleton-lock-elector", daemon=True)
        self._thread.start()
        try:
            self._async = self._call(self._make(name, options))
        except BaseException:
            self._stop_loop()
            raise

    async def _make(self, name: str, options: Any) -> AsyncElector:
        return AsyncElector(name, **options)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: cancels the call on the loop too
            raise

    @property
    def name(self) -> str:
        return self._async.name

    @property
    def holder(self) -> str:
        return self._async.holder

    @property
    def state(self) -> State:
        return self._async.state

    @property
    def lease(self) -> Optional[SyncLease]:
        return self._lease if self._lease is not None and self._lease.held else None

    @property
    def token(self) -> Optional[int]:
        lease = self.lease
        return lease.token if lease else None

    def acquire(self) -> SyncLease:
        """Block as a standby until the lease is ours (see AsyncElector.acquire)."""
        return self._call(self._acquire())

    async def _acquire(self) -> SyncLease:
        lease = await self._async.acquire()
        if self._lease is None or self._lease._lease is not lease:
            self._lease = SyncLease(lease)
            sync_lease = self._lease
            if self._on_lost is not None:
                on_lost = self._on_lost
                lease.add_loss_callback(lambda _: on_lost(sync_lease))
            if self._on_step_down is not None:
                on_step_down = self._on_step_down
                lease.add_step_down_callback(lambda _: on_step_down(sync_lease))
        return self._lease

    def release(self) -> bool:
        """See AsyncElector.release."""
        return self._call(self._async.release())

    def close(self) -> None:
        """Release if leading, stop waiting if standby, stop the elector's thread."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._async.aclose())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "Elector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
