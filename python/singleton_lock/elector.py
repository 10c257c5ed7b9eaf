"""AsyncElector: leader election over a singleton_lock lease, for asyncio.

A standby waits for the lease NAME in short server-side waits (woken at once
when the lease is freed), reconnecting with capped, jittered backoff through
database outages, for as long as `wait` allows (default: forever). The leader
heartbeats every ttl/3 on the connection that holds the lease, watches that
connection continuously, and counts the lease from when the last confirmed
heartbeat was sent: when the time left falls to grace + a safety margin, or a
heartbeat is refused, or the connection breaks, the lease is lost (Lease.lost
is set, `run()` cancels the leader's coroutine). Timing rules: policy.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Awaitable, Callable, Optional, TypeVar

import psycopg

from .durations import interval_literal
from .errors import (DatabaseUnavailableError, ElectorClosed, Error, LeaseLost, UsageError,
                     WaitExpired, is_fatal)
from .lease import Lease, LossReason, State
from .link import Link, ReplyTimeout
from .options import Options, make_options
from .policy import (Backoff, LeaseTimer, lead_before_confirmation, reply_deadline, wait_ran_out,
                     wait_slice)
from .sql import Statements

log = logging.getLogger("singleton_lock")
T = TypeVar("T")
now = time.monotonic


class AsyncElector:
    """See the module docstring. Options (all but `name` keyword-only):
    dsn (libpq conninfo or URI; "" = PG* environment), ttl (default 10 s),
    grace (default ttl/4, < ttl/2), holder (default host:pid:random), wait
    (None/"forever" or a duration), schema, listen (None: LISTEN unless
    singleton_lock.bind_session is off), backoff_initial/backoff_max,
    on_lost(lease). Durations: seconds, timedelta, or "250ms"/"10s"/"2m"/"1h".
    Bad options raise UsageError at once."""

    def __init__(self, name: str, *, on_lost: Optional[Callable[[Lease], None]] = None,
                 **options: Any) -> None:
        self.options: Options = make_options(name, **options)
        self._sql = Statements(self.options.schema)
        self._on_lost = on_lost
        self._state = State.IDLE
        self._link: Optional[Link] = None
        self._lease: Optional[Lease] = None
        self._unreleased: Optional[Lease] = None  # lost, maybe still ours on the server
        self._timer = LeaseTimer(self.options.timing)
        self._keeper: Optional["asyncio.Task[Optional[bool]]"] = None
        self._contender: Optional["asyncio.Task[Lease]"] = None
        self._wake: Optional[asyncio.Event] = None
        self._next_heartbeat = 0.0
        self._heartbeat_now = False
        self._release_requested = False
        self._closed = False
        self._last_error = ""
        self._last_holder = ""
        self._backoff = Backoff(self.options.backoff_initial, self.options.backoff_max,
                                random.random)

    # --- public API ---------------------------------------------------------
    @property
    def name(self) -> str:
        return self.options.name

    @property
    def holder(self) -> str:
        return self.options.holder

    @property
    def state(self) -> State:
        return self._state

    @property
    def lease(self) -> Optional[Lease]:
        """The current lease while leading, else None."""
        return self._lease if self._state in (State.LEADER, State.RELEASING) else None

    @property
    def token(self) -> Optional[int]:
        lease = self.lease
        return lease.token if lease else None

    async def acquire(self) -> Lease:
        """Wait as a standby until the lease is ours (for as long as `wait`
        allows) and return it. Raises WaitExpired, ElectorClosed, or a fatal
        ServerError subclass (extension missing, permission denied, ...).
        Cancelling the caller cancels the waiting call in the server."""
        if self._closed:
            raise ElectorClosed("the elector is closed")
        if self.lease is not None:
            return self.lease
        if self._contender is not None:
            raise UsageError("acquire() is already waiting for this elector")
        if self._unreleased is not None:
            await self._release_after_loss()
        self._contender = asyncio.ensure_future(self._contend())
        try:
            return await self._contender
        except asyncio.CancelledError:
            self._close_link()  # the waiting call was cancelled in the server already
            self._set_state(State.STOPPED)
            if self._closed and not _cancelling(asyncio.current_task()):
                raise ElectorClosed("the elector was closed while waiting") from None
            raise
        finally:
            self._contender = None

    async def release(self) -> bool:
        """Give the lease up: a waiting standby takes over within milliseconds.
        After a loss whose cause may have left the lease ours on the server
        (deadline, broken connection), releases it with its token over a new
        connection. A standby stops waiting. True if a lease was freed."""
        if self._keeper is not None and not self._keeper.done():
            self._release_requested = True
            assert self._wake is not None
            self._wake.set()
            released = await asyncio.shield(self._keeper)
            if released is not None:
                return released
        if self._contender is not None:
            self._contender.cancel()
            await asyncio.gather(self._contender, return_exceptions=True)
            return False
        if self._unreleased is not None:
            return await self._release_after_loss()
        return False

    async def aclose(self) -> None:
        """Release if leading, stop waiting if standby, close the connection."""
        self._closed = True
        await self.release()
        self._close_link()

    async def __aenter__(self) -> "AsyncElector":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def run(self, main: Callable[[Lease], Awaitable[T]]) -> T:
        """Wait for the lease, then run `main(lease)` as leader. If the lease is
        lost, `main` is cancelled and LeaseLost raised (after the lease was
        released, if it may still be ours); when `main` returns or raises, or
        run() is cancelled (e.g. on SIGTERM), the lease is released."""
        lease = await self.acquire()
        work = asyncio.ensure_future(main(lease))
        lost = asyncio.ensure_future(lease.lost.wait())
        try:
            await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self._stop_work(work, lost)
            await self.release()
            raise
        if not work.done():
            await self._stop_work(work, lost)
            await self.release()
            raise LeaseLost(lease.loss_reason, lease.loss_detail)
        lost.cancel()
        await self.release()
        return work.result()

    # --- standby ------------------------------------------------------------
    async def _contend(self) -> Lease:
        opts = self.options
        wait_until = None if opts.wait is None else now() + opts.wait
        self._backoff.reset()
        first = True
        while True:
            link = await self._connected(wait_until)
            slice_ = 0.0 if first else wait_slice(opts.timing, now(), wait_until)
            sent = now()
            try:
                row = await link.execute(
                    self._sql.acquire,
                    (opts.name, opts.ttl_literal, opts.holder, interval_literal(slice_)),
                    reply_deadline(opts.timing, sent, slice_) - sent)
                if row is None:
                    raise Error("singleton_acquire returned no row")
            except Error as error:
                await self._after_error(error, wait_until)
                continue
            self._backoff.reset()
            first = False
            if row[0]:
                lease = await self._take(link, row, sent, waited=slice_ > 0, wait_until=wait_until)
                if lease is not None:
                    return lease
                continue
            self._standby(row[2], row[3])
            if wait_ran_out(now(), wait_until):
                self._set_state(State.WAIT_EXPIRED, "the wait ran out")
                raise WaitExpired(f"lease {opts.name!r}: still held by {row[2]} when the wait ran out")

    async def _connected(self, wait_until: Optional[float]) -> Link:
        while self._link is None or self._link.broken or self._link.closed:
            self._close_link()
            if self._state is not State.STANDBY:
                self._set_state(State.CONNECTING)
            try:
                self._link = await self._open_link()
            except Error as error:
                await self._after_error(error, wait_until)
        return self._link

    async def _open_link(self) -> Link:
        timing = self.options.timing
        link = await Link.open(self.options.conninfo, timing.connect_timeout)
        try:
            listen = self.options.listen
            if listen is None:
                row = await link.execute(self._sql.bind_session, None, timing.reply_slack)
                listen = not (row and row[0] in ("off", "false", "0", "no"))
            if listen:
                link.add_notify_handler(self._on_notify)
                await link.execute(self._sql.listen, None, timing.reply_slack)
        except BaseException:
            link.close()
            raise
        return link

    async def _after_error(self, error: Error, wait_until: Optional[float]) -> None:
        """A failed call while not leading: give up on fatal errors, else back off."""
        self._close_link()
        if is_fatal(error):
            self._set_state(State.FAILED, str(error))
            raise error
        delay = self._backoff.next()
        if str(error) != self._last_error:  # one log line per distinct error
            self._last_error = str(error)
            log.warning("lease %r: %s; retrying in %.0f ms", self.name, error, delay * 1000)
        self._set_state(State.CONNECTING)
        if wait_until is not None:
            delay = min(delay, max(0.0, wait_until - now()))
        await asyncio.sleep(delay)
        if wait_ran_out(now(), wait_until):
            self._set_state(State.WAIT_EXPIRED, "the wait ran out")
            raise WaitExpired(f"lease {self.name!r}: the wait ran out ({error})")

    def _standby(self, holder: str, expires_at: Any) -> None:
        if self._state is not State.STANDBY or holder != self._last_holder:
            self._last_holder = holder
            self._state = State.STANDBY
            log.info("lease %r: standby, held by %s until %s", self.name, holder, expires_at)

    # --- becoming leader ----------------------------------------------------
    async def _take(self, link: Link, row: Any, sent: float, waited: bool,
                    wait_until: Optional[float]) -> Optional[Lease]:
        """Acquired: lead now, or (after a long server-side wait) confirm with a
        heartbeat first. None: lost before it was confirmed (wait again)."""
        timing = self.options.timing
        token, expires_at = int(row[1]), row[3]
        self._timer = LeaseTimer(timing)
        self._heartbeat_now = False
        if not waited:
            self._timer.confirmed(sent)
        elif lead_before_confirmation(timing, sent, now()):
            self._timer.confirmed(sent)
            self._heartbeat_now = True  # confirm at once; the count moves to it
        else:
            confirm_sent = now()
            try:
                reply = await link.execute(self._sql.heartbeat,
                                           (self.name, token, self.options.ttl_literal),
                                           timing.reply_slack)
            except Error as error:
                await self._after_error(error, wait_until)
                return None
            if reply is None or reply[0] is None:
                return None
            self._timer.confirmed(confirm_sent)
            expires_at = reply[0]
        return self._become_leader(link, token, expires_at)

    def _become_leader(self, link: Link, token: int, expires_at: Any) -> Lease:
        lease = Lease(self.name, self.holder, token, expires_at, self._sql,
                      lambda: self._timer.step_down_at, self.options.timing.grace)
        if self._on_lost is not None:
            lease.add_loss_callback(self._on_lost)
        self._lease = lease
        self._release_requested = False
        self._next_heartbeat = self._timer.next_heartbeat_at
        self._wake = asyncio.Event()
        self._set_state(State.LEADER, f"token {token}, expires {expires_at}")
        self._keeper = asyncio.ensure_future(self._keep(link, lease))
        return lease

    # --- leader -------------------------------------------------------------
    async def _keep(self, link: Link, lease: Lease) -> Optional[bool]:
        """The leader's loop. Returns the release's result, or None when lost."""
        assert self._wake is not None
        try:
            while True:
                t = now()
                if self._timer.must_step_down(t):
                    self._lose(lease, LossReason.DEADLINE, "no heartbeat confirmed in time")
                    return None
                if link.broken or link.closed:
                    self._lose(lease, LossReason.CONNECTION_LOST, link.broken or "connection closed")
                    return None
                if self._release_requested:
                    return await self._release(link, lease)
                if self._heartbeat_now or t >= self._next_heartbeat:
                    await self._heartbeat(link, lease)
                    if lease.lost.is_set():
                        return None
                    continue
                await self._idle(link, min(self._next_heartbeat, self._timer.step_down_at) - t)
        except asyncio.CancelledError:
            self._lose(lease, LossReason.CONNECTION_LOST, "the elector's task was cancelled")
            raise
        except Exception as error:  # never leave a lease "held" after a bug
            log.exception("lease %r: unexpected error while leading", self.name)
            self._lose(lease, LossReason.CONNECTION_LOST, f"unexpected error: {error}")
            return None

    async def _idle(self, link: Link, timeout: float) -> None:
        """Sleep until the next timer, but wake at once on anything the server
        sends (a notification about our lease, or the end of the connection)."""
        assert self._wake is not None
        self._wake.clear()
        link.watch(self._wake.set)
        try:
            await asyncio.wait_for(self._wake.wait(), max(timeout, 0))
        except asyncio.TimeoutError:
            pass
        finally:
            link.unwatch()

    async def _heartbeat(self, link: Link, lease: Lease) -> None:
        self._heartbeat_now = False
        sent = now()
        try:
            row = await link.execute(self._sql.heartbeat,
                                     (self.name, lease.token, self.options.ttl_literal),
                                     self._timer.step_down_at - sent)
        except ReplyTimeout:
            self._lose(lease, LossReason.DEADLINE, "heartbeat not confirmed in time")
            return
        except DatabaseUnavailableError as error:
            self._lose(lease, LossReason.CONNECTION_LOST, str(error))
            return
        except Error as error:
            if is_fatal(error):
                self._lose(lease, LossReason.REFUSED, str(error))
            else:  # transient: try again soon; the deadline rule still applies
                log.warning("lease %r: heartbeat failed: %s", self.name, error)
                self._next_heartbeat = now() + self.options.timing.heartbeat_retry
            return
        if row is None or row[0] is None:
            self._lose(lease, LossReason.REFUSED, "singleton_heartbeat returned NULL")
            return
        self._timer.confirmed(sent)
        lease.expires_at = row[0]
        self._next_heartbeat = self._timer.next_heartbeat_at

    def _on_notify(self, notify: psycopg.Notify) -> None:
        link = self._link
        if (notify.payload == self.name and self._state is State.LEADER and link is not None
                and not link.closed and notify.pid != link.backend_pid):
            self._heartbeat_now = True  # someone else changed our lease: check at once
            if self._wake is not None:
                self._wake.set()

    def _lose(self, lease: Lease, reason: LossReason, detail: str) -> None:
        self._close_link()  # ends the session binding too
        if reason is not LossReason.REFUSED:
            self._unreleased = lease  # may still be ours on the server: release() frees it
        self._set_state(State.LOST, f"{reason}: {detail}")
        lease._end(reason, detail)

    async def _release(self, link: Link, lease: Lease) -> bool:
        self._set_state(State.RELEASING)
        try:
            row = await link.execute(self._sql.release, (self.name, lease.token),
                                     self.options.timing.release_timeout)
            released = bool(row and row[0])
        except Error as error:
            log.warning("lease %r: release failed: %s", self.name, error)
            self._unreleased = lease
            released = False
        lease._end(None, "released")
        self._close_link()
        self._set_state(State.RELEASED, "" if released else "(the lease was no longer ours)")
        if self._unreleased is lease:
            released = await self._release_after_loss()
        return released

    async def _release_after_loss(self) -> bool:
        """Free a lease we lost but may still hold on the server (e.g. the server
        restarted: a lease then stays live until start + ttl unless released with
        its token), over new connections, for at most one ttl."""
        lease, self._unreleased = self._unreleased, None
        if lease is None:
            return False
        timing = self.options.timing
        give_up_at = now() + timing.ttl
        backoff = Backoff(self.options.backoff_initial, self.options.backoff_max, random.random)
        while True:
            left = give_up_at - now()
            link: Optional[Link] = None
            try:
                link = await Link.open(self.options.conninfo, min(timing.connect_timeout, left))
                row = await link.execute(self._sql.release, (self.name, lease.token),
                                         min(timing.release_timeout, max(left, 0.05)))
                released = bool(row and row[0])
                log.info("lease %r: token %d %s after the loss", self.name, lease.token,
                         "released" if released else "was no longer ours")
                return released
            except Error as error:
                delay = backoff.next()
                if is_fatal(error) or now() + delay >= give_up_at:
                    log.warning("lease %r: could not release token %d after the loss: %s",
                                self.name, lease.token, error)
                    return False
                await asyncio.sleep(delay)
            finally:
                if link is not None:
                    link.close()

    # --- helpers ------------------------------------------------------------
    async def _stop_work(self, work: "asyncio.Future[Any]", lost: "asyncio.Future[Any]") -> None:
        """Cancel the leader's work and give it up to `grace` to finish."""
        lost.cancel()
        work.cancel()
        done, _ = await asyncio.wait({work}, timeout=self.options.timing.grace)
        if not done:
            log.warning("lease %r: the leader's work did not stop within the grace of %.3f s",
                        self.name, self.options.timing.grace)
        elif not work.cancelled() and work.exception() is not None:
            log.warning("lease %r: the leader's work ended with %r", self.name, work.exception())

    def _close_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _set_state(self, state: State, detail: str = "") -> None:
        self._state = state
        if state is State.LOST:
            log.warning("lease %r: LOST (%s)", self.name, detail)
        elif state is not State.CONNECTING:
            log.info("lease %r: %s%s", self.name, state.value, f", {detail}" if detail else "")


def _cancelling(task: Optional["asyncio.Task[Any]"]) -> int:
    """How many cancel requests are pending on `task` (Python >= 3.11; else 0)."""
    counter = getattr(task, "cancelling", None)
    return int(counter()) if counter is not None else 0
