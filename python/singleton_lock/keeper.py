"""The leader's side of one tenure, on the connection that holds the lease.

Heartbeats every ttl/3. Between them, with extension 1.1, it waits inside
singleton_watch: the server answers at once when a waiter of higher priority
asks for the lease (`step_down`) or when the lease is lost (`lost`: released
or taken by someone else, force-released, paused), so both are known within a
round trip. Without it (1.0, no EXECUTE, while stopping) it sleeps, woken by
NOTIFY and by the end of the connection.

The watch stays in flight when the next statement is due: the heartbeat, or
the release (run() returns with the watch still waiting), is queued behind it
(link.py, pipe.py) and the server ends the watch when that statement arrives,
so no cancel request is needed. A server that does not (a build of 1.1 older
than that) is noticed (link.yields): there the watch ends by itself before the
next heartbeat, at most WATCH_MAX, and a release cancels it.

The deadline rule never waits for the server: every call is bounded by the
step-down point (the lease counted from the last confirmed heartbeat's send
time, minus grace and a safety margin); when it passes the tenure ends at once
and only then is the call abandoned.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Any, Callable, Optional, Sequence, Set, Tuple

from .durations import interval_literal
from .errors import DatabaseUnavailableError, Error, QueryCanceledError, is_fatal
from .lease import Lease, LossReason
from .link import Link
from .pipe import PipedCall, Reply
from .policy import LeaseTimer, Timing, within_statement_timeout
from .sql import Statements
from .within import within

log = logging.getLogger("singleton_lock")
now = time.monotonic
# Where the server ends a watch when the next statement arrives, a watch is
# asked to last this much past the next heartbeat (which then ends it).
WATCH_PAST_HEARTBEAT = 1.0
# Elsewhere a watch is asked to end before the next heartbeat, and within this
# (it bounds how long a lost cancel request could matter).
WATCH_MAX = 1.0
# A NOTIFY about our lease asks for a heartbeat at once, but at most one per this
# (any role may NOTIFY the channel: a loop of them made a leader heartbeat
# thousands of times a second).
NOTIFIED_CHECK_GAP = 0.1


class Duty(enum.Enum):
    """What the leader's loop does next: the first that applies."""

    DEADLINE = "deadline"  # no heartbeat confirmed in time: the lease counts as lost
    BROKEN = "broken"  # the holding connection broke: lost
    RELEASE = "release"  # release() was called (it is queued behind a watch in flight)
    HEARTBEAT = "heartbeat"  # due, or a NOTIFY says someone changed the lease
    WATCH = "watch"  # 1.1: wait in singleton_watch until the next heartbeat is due
    IDLE = "idle"  # sleep until then, woken by NOTIFY, the connection's end or a request


class Keeper:
    """Keeps one lease (see the module docstring). `on_lost(reason, detail)`
    ends the tenure for the elector; `on_reply()` says the connection works."""

    def __init__(self, *, link: Link, lease: Lease, timer: LeaseTimer, timing: Timing,
                 statements: Statements, ttl_literal: str, watch: bool, confirm_now: bool,
                 statement_timeout: float,
                 on_lost: Callable[[LossReason, str], None], on_reply: Callable[[], None]) -> None:
        self.link = link
        self._lease = lease
        self._timer = timer
        self._timing = timing
        self._sql = statements
        self._ttl = ttl_literal
        self._watch_enabled = watch
        self._statement_timeout = statement_timeout  # the session's (0: off): watches stay under it
        self._on_lost = on_lost
        self._on_reply = on_reply
        self._next_heartbeat = timer.next_heartbeat_at
        self._heartbeat_now = confirm_now  # after a waited acquire: confirm at once
        self._notified_check = float("inf")  # a heartbeat a NOTIFY asked for is due then
        self._last_beat = 0.0  # when the last heartbeat went out
        self._quiet = False  # stopping: start no more watches
        self._wake = asyncio.Event()  # anything worth a look (while idle)
        self._release_requested = asyncio.Event()  # release(): ends the loop, even mid-watch

    # --- requests (from the elector, on the loop's thread) -----------------
    def request_release(self) -> None:
        self._release_requested.set()
        self._wake.set()

    def quiesce(self) -> None:
        """The work is stopping and a release will follow: start no more
        watches (the one in flight, if any, ends when the release arrives)."""
        self._quiet = True
        self._wake.set()

    def notified(self) -> None:
        """Someone else changed our lease (NOTIFY): heartbeat at once, or
        NOTIFIED_CHECK_GAP after the last one."""
        self._notified_check = min(self._notified_check,
                                   max(now(), self._last_beat + NOTIFIED_CHECK_GAP))
        self._wake.set()

    def duty(self, t: float) -> Duty:
        if self._timer.must_step_down(t):
            return Duty.DEADLINE
        if self.link.broken or self.link.closed:
            return Duty.BROKEN
        if self._release_requested.is_set():
            return Duty.RELEASE
        if self._heartbeat_now or t >= self._next_heartbeat or t >= self._notified_check:
            return Duty.HEARTBEAT
        if self._watch_enabled and not self._quiet and not self._lease.step_down_requested.is_set():
            return Duty.WATCH
        return Duty.IDLE

    # --- the loop ------------------------------------------------------------
    async def run(self) -> bool:
        """True: a release was requested (a watch may still be in flight: the
        release is queued behind it). False: the tenure was lost (on_lost was
        called)."""
        try:
            while not self._lease.lost.is_set():
                duty = self.duty(now())
                if duty is Duty.DEADLINE:
                    self._lost(LossReason.DEADLINE, "no heartbeat confirmed in time")
                elif duty is Duty.BROKEN:
                    self._lost(LossReason.CONNECTION_LOST, self.link.broken or "connection closed")
                elif duty is Duty.RELEASE:
                    return True
                elif duty is Duty.HEARTBEAT:
                    await self._heartbeat()
                elif duty is Duty.WATCH:
                    await self._watch()
                else:
                    await self._idle()
            return False
        except asyncio.CancelledError:
            self._lost(LossReason.CONNECTION_LOST, "the elector's task was cancelled")
            raise
        except Exception as error:  # never leave a lease "held" after a bug
            log.exception("lease %r: unexpected error while leading", self._lease.name)
            self._lost(LossReason.CONNECTION_LOST, f"unexpected error: {error}")
            return False

    def _lost(self, reason: LossReason, detail: str) -> None:
        self.link.close()  # ends the session binding too
        if not self._lease.lost.is_set():
            self._on_lost(reason, detail)

    async def _heartbeat(self) -> None:
        self._heartbeat_now = False
        self._notified_check = float("inf")  # (this one checks whatever was notified)
        sent = self._last_beat = now()
        reply = await self._call(self._sql.heartbeat, (self._lease.name, self._lease.token,
                                                        self._ttl))
        if reply is None:
            return
        if reply.error is not None:
            if isinstance(reply.error, DatabaseUnavailableError):
                self._lost(LossReason.CONNECTION_LOST, str(reply.error))
            elif is_fatal(reply.error):
                self._lost(LossReason.REFUSED, str(reply.error))
            else:  # transient: try again soon; the deadline rule still applies
                log.warning("lease %r: heartbeat failed: %s", self._lease.name, reply.error)
                self._next_heartbeat = now() + self._timing.heartbeat_retry
            return
        if reply.row is None or reply.row[0] is None:
            self._lost(LossReason.REFUSED, "singleton_heartbeat returned NULL")
            return
        self._timer.confirmed(sent)
        self._on_reply()
        self._lease.expires_at = reply.row[0]
        self._next_heartbeat = self._timer.next_heartbeat_at

    async def _watch(self) -> None:
        """One singleton_watch, until the next heartbeat is due. Where the
        server ends it when the next statement arrives (or may: link.yields is
        not False), it is asked to last past that point and the heartbeat is
        queued behind it; else it is asked to end by then."""
        queue_heartbeat = self.link.yields is not False
        wait = self._next_heartbeat - now()
        wait = wait + WATCH_PAST_HEARTBEAT if queue_heartbeat else min(wait, WATCH_MAX)
        wait = within_statement_timeout(wait, self._statement_timeout)
        try:
            watch = await self.link.start(
                self._sql.watch, (self._lease.name, self._lease.token,
                                  interval_literal(max(0.0, wait))),
                max(0.0, self._timer.step_down_at - now()))
        except Error as error:
            self._watch_failed(error, interrupted=False)
            return
        while not watch.done() and not self._lease.lost.is_set():
            if self._release_requested.is_set():
                return  # the release is queued behind the watch, which it ends
            if now() >= self._timer.step_down_at:
                self._lost(LossReason.DEADLINE, "no reply from the server in time")
                return
            if queue_heartbeat and now() >= self._next_heartbeat:
                await self._heartbeat()  # queued behind the watch, which it ends
                continue
            await self._await_watch(watch, self._next_heartbeat if queue_heartbeat else None)
        if watch.done() and not self._lease.lost.is_set():
            self._watched(watch.reply())

    async def _await_watch(self, watch: PipedCall, heartbeat_at: Optional[float]) -> None:
        """Until the watch's reply, a release request, `heartbeat_at` or the
        step-down point, whichever comes first."""
        until = self._timer.step_down_at if heartbeat_at is None \
            else min(heartbeat_at, self._timer.step_down_at)
        request = asyncio.ensure_future(self._release_requested.wait())
        waits: Set["asyncio.Future[Any]"] = {watch.future, request}
        try:
            await asyncio.wait(waits, timeout=max(0.0, until - now()),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            request.cancel()

    def _watched(self, reply: Reply) -> None:
        if reply.error is not None:
            self._watch_failed(reply.error, reply.interrupted)
            return
        self._on_reply()
        outcome = reply.row[0] if reply.row else None
        if outcome == "step_down":
            log.info("lease %r: step-down requested: a waiter of higher priority asks for the "
                     "lease", self._lease.name)
            self._lease._request_step_down()
        elif outcome == "lost":
            self._lost(LossReason.REFUSED, "singleton_watch: the lease is no longer ours "
                       "(released or taken by someone else, force-released, or paused)")
        elif outcome != "held":
            self._watch_failed(Error(f"singleton_watch returned {outcome!r}"), False)

    def _watch_failed(self, error: Error, interrupted: bool) -> None:
        if isinstance(error, DatabaseUnavailableError):
            self._lost(LossReason.CONNECTION_LOST, str(error))
        elif isinstance(error, QueryCanceledError) and interrupted:
            pass  # the link cancelled it for the statement queued behind it
        else:  # e.g. a statement_timeout set meanwhile: heartbeats alone from now on
            self._watch_enabled = False
            log.warning("lease %r: singleton_watch failed (%s); until this tenure ends, step-down "
                        "requests and losses are noticed at heartbeats and by NOTIFY only",
                        self._lease.name, error)

    async def _idle(self) -> None:
        """Sleep until the next timer, but wake at once on anything the server
        sends (a notification about our lease, or the end of the connection)
        and on a request."""
        timeout = min(self._next_heartbeat, self._notified_check, self._timer.step_down_at) - now()
        self._wake.clear()
        self.link.watch(self._wake.set)
        try:
            await within(self._wake.wait(), max(timeout, 0))
        except asyncio.TimeoutError:
            pass
        finally:
            self.link.unwatch()

    # --- one call, bounded by the step-down point ---------------------------
    async def _call(self, statement: Any, params: Sequence[Any]) -> Optional[Reply]:
        """Its reply, or None when the tenure ended first (the deadline rule:
        the loss is declared at the step-down point, then the call abandoned)."""
        call = asyncio.ensure_future(self.link.execute(statement, params, None))
        try:
            await asyncio.wait({call}, timeout=max(0.0, self._timer.step_down_at - now()))
            if not call.done():
                self._on_lost(LossReason.DEADLINE, "no reply from the server in time")
                return None  # (finally: the call is cancelled in the server)
            return _reply(call)
        finally:
            if not call.done():
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
            if self._lease.lost.is_set():
                self.link.close()


def _reply(call: "asyncio.Future[Optional[Tuple[Any, ...]]]") -> Reply:
    error = call.exception()
    if error is None:
        return Reply(call.result(), None)
    if isinstance(error, Error):
        return Reply(None, error)
    raise error
