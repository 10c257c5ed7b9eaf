"""AsyncElector: leader election over a singleton_lock lease, for asyncio.

A standby waits for the lease NAME in short server-side waits (woken at once
when the lease is freed or handed to it), with its `priority` (extension 1.1),
reconnecting through database outages and failovers (policy.Reconnect: at once
after losing a working connection, then capped backoff with jitter; each host
of a multi-host DSN with its own connect timeout: connector.py), for as long
as `wait` allows (default: forever). The leader's tenure (keeper.py):
heartbeats every ttl/3 on the connection that holds the lease, singleton_watch
between them (a step-down request of a waiter of higher priority, or a loss,
is known at once), and the local deadline rule. On loss Lease.lost is set and
run() cancels the leader's coroutine; on a step-down request
Lease.step_down_requested is set and run() cancels it and releases, which
hands the lease to that waiter. Timing rules: policy.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from typing import Any, Awaitable, Callable, Optional, Tuple, TypeVar

import psycopg

from .connector import Connector
from .durations import interval_literal
from .errors import (ElectorClosed, Error, ExtensionMissingError, LeaseLost, SteppedDown,
                     UsageError, WaitExpired, is_fatal)
from .keeper import Keeper
from .lease import Lease, LossReason, State
from .link import Link
from .within import cancels_requested
from .options import Options, make_options
from .policy import (Backoff, LeaseTimer, Reconnect, lead_before_confirmation, primary_missing,
                     reply_deadline, wait_ran_out, wait_slice, within_statement_timeout)
from .sql import ServerFeatures, Statements

log = logging.getLogger("singleton_lock")
T = TypeVar("T")
now = time.monotonic


class AsyncElector:
    """See the module docstring. Options (all but `name` keyword-only):
    dsn (libpq conninfo or URI; "" = PG* environment), ttl (default 10 s),
    grace (default ttl/4, < ttl/2), holder (default host:pid:random), wait
    (None/"forever" or a duration), schema, listen (None: LISTEN unless
    singleton_lock.bind_session is off), priority (an integer, default 0;
    non-zero needs extension 1.1), backoff_initial/backoff_max,
    failover_backoff_max/failover_window, on_lost(lease), on_step_down(lease).
    Durations: seconds, timedelta, or "250ms"/"10s"/"2m"/"1h". Bad options
    raise UsageError at once."""

    def __init__(self, name: str, *, on_lost: Optional[Callable[[Lease], None]] = None,
                 on_step_down: Optional[Callable[[Lease], None]] = None,
                 **options: Any) -> None:
        self.options: Options = make_options(name, **options)
        # schema=, or None: then the probe finds the extension's schema and
        # _statements_for() names it in our calls (sql.py: why)
        self._given_sql = Statements(self.options.schema)
        self._sql = self._given_sql  # the current connection's
        self._on_step_down = on_step_down
        self._features: Optional[ServerFeatures] = None
        self._work: Optional["asyncio.Future[Any]"] = None  # run()'s leader work, once started
        self._warned_pooler = False  # _check_direct() said it once
        self._tenure: Optional[Keeper] = None
        self._connector = Connector(self.options.conninfo, self.options.timing.connect_timeout,
                                    os.environ)
        self._on_lost = on_lost
        self._state = State.IDLE
        self._link: Optional[Link] = None
        self._lease: Optional[Lease] = None
        self._unreleased: Optional[Lease] = None  # lost, maybe still ours on the server
        self._watch_yields: Optional[bool] = None  # see Link.yields: learned once, kept
        self._timer = LeaseTimer(self.options.timing)
        self._keeper: Optional["asyncio.Task[Optional[bool]]"] = None
        self._contender: Optional["asyncio.Task[Lease]"] = None
        self._closed = False
        self._last_error = ""
        self._last_holder = ""
        opts = self.options
        self._reconnect = Reconnect(initial=opts.backoff_initial, maximum=opts.backoff_max,
                                    failover_max=opts.failover_backoff_max,
                                    failover_window=opts.failover_window, random=random.random)

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
            self._reconnect.stopped()
            self._set_state(State.STOPPED)
            if self._closed and not cancels_requested(asyncio.current_task()):
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
            assert self._tenure is not None
            self._tenure.request_release()
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

    async def run(self, main: Callable[[Lease], Awaitable[T]], *, step_down: bool = True) -> T:
        """Wait for the lease, then run `main(lease)` as leader. If the lease is
        lost, `main` is cancelled and LeaseLost raised (after the lease was
        released, if it may still be ours). If a waiter of higher priority asks
        for the lease (step_down=True), `main` is cancelled, the lease released
        (handed to that waiter) and SteppedDown raised. When `main` returns or
        raises, or run() is cancelled (e.g. on SIGTERM), the lease is released."""
        lease = await self.acquire()
        work = self._work = asyncio.ensure_future(main(lease))
        ended = asyncio.ensure_future(lease.lost.wait())
        asked = asyncio.ensure_future(lease.step_down_requested.wait())
        try:
            await asyncio.wait({work, ended, asked} if step_down else {work, ended},
                               return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self._wind_down(work, ended, asked)
            raise
        if work.done():
            await self._wind_down(work, ended, asked)
            return work.result()
        stepping_down = not lease.lost.is_set()
        await self._wind_down(work, ended, asked)
        if stepping_down:
            raise SteppedDown()
        raise LeaseLost(lease.loss_reason or "released", lease.loss_detail)

    # --- standby ------------------------------------------------------------
    async def _contend(self) -> Lease:
        opts = self.options
        wait_until = None if opts.wait is None else now() + opts.wait
        if self._reconnect.was_working:  # our working connection broke (a leader's loss)
            delay = self._reconnect.next(now(), False)
            log.debug("lease %r: reconnecting in %.0f ms", self.name, delay * 1000)
            await self._pause(delay, wait_until)
        first = True
        while True:
            link = await self._connected(wait_until)
            slice_ = 0.0 if first else within_statement_timeout(
                wait_slice(opts.timing, now(), wait_until), self._statement_timeout())
            sent = now()
            try:
                row = await link.execute(*self._acquire_call(slice_),
                                         reply_deadline(opts.timing, sent, slice_) - sent)
                if row is None:
                    raise Error("singleton_acquire returned no row")
            except Error as error:
                await self._after_error(error, wait_until)
                continue
            self._reconnect.working()
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

    def _acquire_call(self, wait: float) -> Tuple[Any, Tuple[Any, ...]]:
        opts = self.options
        args = (opts.name, opts.ttl_literal, opts.holder, interval_literal(wait))
        if opts.priority:  # (checked against the server's version when connecting)
            return self._sql.acquire_ranked, args + (opts.priority,)
        return self._sql.acquire, args  # the form every version has

    async def _connected(self, wait_until: Optional[float]) -> Link:
        while self._link is None or self._link.broken or self._link.closed:
            self._close_link()
            if self._state is not State.STANDBY:
                self._set_state(State.CONNECTING)
            try:
                self._link = await self._open_link()
            except Error as error:
                await self._after_error(error, wait_until)
            else:
                self._reconnect.working()
        return self._link

    async def _open_link(self) -> Link:
        timing = self.options.timing
        link = await self._connector.open()
        try:
            row = await self._set_up(link, timing.reply_slack)
            self._learn(ServerFeatures.from_probe(row))
            self._sql = self._statements_for(self._features)
            self._check_direct(link, row)
            listen = self.options.listen
            if listen is None:
                listen = self._features is not None and self._features.bind_session
            if listen:
                link.add_notify_handler(self._on_notify)
                await link.execute(self._sql.listen, None, timing.reply_slack)
        except BaseException:
            link.close()
            raise
        return link

    def _learn(self, features: ServerFeatures) -> None:
        """What the server offers: refuse a priority it cannot honour (unless
        the extension is missing altogether: the acquire then says so)."""
        priority = self.options.priority
        if priority and features.installed and not features.priority:
            raise UsageError(
                f"priority {priority} needs singleton_lock 1.1 on the server, which has an older "
                "version (ALTER EXTENSION singleton_lock UPDATE), or use priority 0")
        if features != self._features and features.installed:
            if features.watch:
                log.info("lease %r: the server notifies step-down requests and losses at once "
                         "(singleton_watch)", self.name)
            elif features.priority:
                log.warning("lease %r: no EXECUTE on singleton_watch: step-down requests are not "
                            "noticed (see the GRANT in the docs)", self.name)
        self._features = features

    def _statements_for(self, features: Optional[ServerFeatures]) -> Statements:
        """The statements for a connection: schema='s if given, else naming
        the schema the probe found the extension in. None found: the extension
        is not installed in this database, and an unqualified call could find
        someone else's function of that name: ExtensionMissingError."""
        found = features.schema if features is not None else None
        if self.options.schema:
            return self._given_sql
        if not found:
            raise ExtensionMissingError(
                "the extension singleton_lock is not installed in this database "
                "(CREATE EXTENSION singleton_lock)", "42704")
        if self._sql.schema != found:
            return Statements(found)
        return self._sql

    def _statement_timeout(self) -> float:
        return self._features.statement_timeout if self._features is not None else 0.0

    async def _set_up(self, link: Link, timeout: float) -> Any:
        """The session's own settings, first on every connection of ours
        (sql.py): the transactions' defaults, then the probe; its row."""
        await link.execute(self._given_sql.characteristics, None, timeout)
        return await link.execute(self._given_sql.probe, self._given_sql.probe_params, timeout)

    def _check_direct(self, link: Link, probe: Any) -> None:
        """A pooler (PgBouncer) hands out a backend pid of its own: the
        server's differs. Session-bound leases are then tied to server sessions
        the pooler keeps open after we are gone, or shares: say so, once."""
        if self._warned_pooler or not probe or len(probe) < 5 or probe[4] is None:
            return
        if probe[4] == link.backend_pid or not (self._features and self._features.bind_session):
            return
        self._warned_pooler = True
        log.warning("lease %r: the connection goes through a connection pooler or proxy (the "
                    "server says backend %s, the connection %s): a lease bound to its server "
                    "sessions is freed when the pooler closes them, not when this process dies, "
                    "and in transaction pooling they are shared. Connect directly, or set "
                    "singleton_lock.bind_session = off for this role (docs/python.md)",
                    self.name, probe[4], link.backend_pid)

    async def _after_error(self, error: Error, wait_until: Optional[float]) -> None:
        """A failed call while not leading: give up on fatal errors, else back off."""
        self._close_link()
        if is_fatal(error):
            self._reconnect.stopped()
            self._set_state(State.FAILED, str(error))
            raise error
        delay = self._reconnect.next(now(), primary_missing(error))
        log.debug("lease %r: reconnecting in %.0f ms", self.name, delay * 1000)
        if str(error) != self._last_error:  # one log line per distinct error
            self._last_error = str(error)
            log.warning("lease %r: %s; retrying in %.0f ms", self.name, error, delay * 1000)
        self._set_state(State.CONNECTING)
        await self._pause(delay, wait_until, error)

    async def _pause(self, delay: float, wait_until: Optional[float],
                     error: Optional[Error] = None) -> None:
        """Sleep before the next attempt, no longer than `wait` allows."""
        if wait_until is not None:
            delay = min(delay, max(0.0, wait_until - now()))
        if delay > 0:
            await asyncio.sleep(delay)
        if wait_ran_out(now(), wait_until):
            self._set_state(State.WAIT_EXPIRED, "the wait ran out")
            raise WaitExpired(f"lease {self.name!r}: the wait ran out"
                              + (f" ({error})" if error else ""))

    def _standby(self, holder: Optional[str], expires_at: Any) -> None:
        holder = holder or ""
        if self._state is not State.STANDBY or holder != self._last_holder:
            self._last_holder = holder
            self._state = State.STANDBY
            if holder:
                log.info("lease %r: standby, held by %s until %s", self.name, holder, expires_at)
            else:
                log.info("lease %r: standby, no holder (paused, or kept for a waiter of higher "
                         "priority)", self.name)

    # --- becoming leader ----------------------------------------------------
    async def _take(self, link: Link, row: Any, sent: float, waited: bool,
                    wait_until: Optional[float]) -> Optional[Lease]:
        """Acquired: lead now, or (after a long server-side wait) confirm with a
        heartbeat first. None: lost before it was confirmed (wait again)."""
        timing = self.options.timing
        token, expires_at = int(row[1]), row[3]
        self._timer = LeaseTimer(timing)
        confirm_now = False
        if not waited:
            self._timer.confirmed(sent)
        elif lead_before_confirmation(timing, sent, now()):
            self._timer.confirmed(sent)
            confirm_now = True  # confirm at once; the count moves to it
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
        return self._become_leader(link, token, expires_at, confirm_now)

    def _become_leader(self, link: Link, token: int, expires_at: Any,
                       confirm_now: bool) -> Lease:
        opts = self.options
        lease = Lease(self.name, self.holder, token, expires_at, self._sql,
                      lambda: self._timer.step_down_at, opts.timing.grace)
        if self._on_lost is not None:
            lease.add_loss_callback(self._on_lost)
        if self._on_step_down is not None:
            lease.add_step_down_callback(self._on_step_down)
        self._lease = lease
        if link.yields is None:
            link.yields = self._watch_yields
        self._tenure = Keeper(
            link=link, lease=lease, timer=self._timer, timing=opts.timing, statements=self._sql,
            ttl_literal=opts.ttl_literal, confirm_now=confirm_now,
            watch=self._features is not None and self._features.watch,
            statement_timeout=self._statement_timeout(),
            on_lost=lambda reason, detail: self._tenure_lost(lease, reason, detail),
            on_reply=self._reconnect.working)
        self._set_state(State.LEADER, f"token {token}, expires {expires_at}")
        self._keeper = asyncio.ensure_future(self._keep(self._tenure, lease))
        return lease

    # --- leader -------------------------------------------------------------
    async def _keep(self, keeper: Keeper, lease: Lease) -> Optional[bool]:
        """The tenure. Returns the release's result, or None when lost."""
        try:
            if await keeper.run():
                return await self._release(keeper.link, lease)
            self._close_link()
            return None
        finally:
            if keeper.link.yields is not None:
                self._watch_yields = keeper.link.yields

    def _on_notify(self, notify: psycopg.Notify) -> None:
        link = self._link
        if (notify.payload == self.name and self._state is State.LEADER and link is not None
                and not link.closed and notify.pid != link.backend_pid
                and self._tenure is not None):
            self._tenure.notified()  # someone else changed our lease: check at once

    def _tenure_lost(self, lease: Lease, reason: LossReason, detail: str) -> None:
        if reason is not LossReason.REFUSED:
            self._unreleased = lease  # may still be ours on the server: release() frees it
        else:  # the server answered: the connection worked, its end is no failover sign
            self._reconnect.stopped()
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
        self._reconnect.stopped()
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
                link = await self._connector.open(min(timing.connect_timeout, left))
                # (the session's own settings first, as on every connection of ours)
                probe = await self._set_up(link, min(timing.reply_slack, max(left, 0.05)))
                statements = self._statements_for(ServerFeatures.from_probe(probe))
                row = await link.execute(statements.release, (self.name, lease.token),
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
    async def _wind_down(self, work: "asyncio.Future[Any]", *waits: "asyncio.Future[Any]") -> None:
        """The end of run(): stop the work (unless done) and release. The
        connection is freed for the release while the work stops. A cancel of
        run() meanwhile is raised only once the work has stopped and the lease
        was released: until then the lease must stay ours."""
        for wait in waits:
            wait.cancel()
        if self._tenure is not None and self.lease is not None:
            self._tenure.quiesce()
        cancelled = False
        if not work.done():
            cancelled = await self._stop_work(work)
        await self.release()
        if cancelled:
            raise asyncio.CancelledError()

    async def _stop_work(self, work: "asyncio.Future[Any]") -> bool:
        """Cancel the leader's work and give it `grace` to finish; work that
        takes longer is waited for (see _hold_while_running). True when run()
        itself was cancelled meanwhile (the caller raises that afterwards)."""
        work.cancel()
        cancelled = await self._until_stopped(work, now() + self.options.timing.grace)
        if not work.done():
            cancelled = await self._hold_while_running(work) or cancelled
        if not work.cancelled() and work.exception() is not None:
            log.warning("lease %r: the leader's work ended with %r", self.name, work.exception())
        return cancelled

    async def _hold_while_running(self, work: "asyncio.Future[Any]") -> bool:
        """The work outlived its grace. Nothing goes on until it has stopped:
        releasing the lease now (a stop) would let a standby lead beside code
        of ours that still runs, so it stays held and the heartbeats go on;
        after a loss, returning now would let run_as_leader lead again beside
        it (and a release after the loss would hand over sooner than the ttl)."""
        lease = self._lease
        held = lease is not None and not lease.lost.is_set()
        log.warning("lease %r: the leader's work did not stop within the grace of %.3f s; %s "
                    "until it stops", self.name, self.options.timing.grace,
                    "the lease stays held" if held else "waiting")
        started = now()
        cancelled = await self._until_stopped(work, None)
        log.info("lease %r: the leader's work stopped %.3f s after its grace", self.name,
                 now() - started)
        return cancelled

    def _cancel_work_again(self) -> bool:
        """run_as_leader's second stop signal: cancel the leader's work again
        (another CancelledError) if it is still stopping; the lease stays held
        until it has stopped. False if there is no such work."""
        if self._work is None or self._work.done():
            return False
        self._work.cancel()
        return True

    async def _until_stopped(self, work: "asyncio.Future[Any]", deadline: Optional[float]) -> bool:
        """Waits for the work to end (or the deadline). A cancel of our own
        task meanwhile is noted, not obeyed: returning would release (or lead
        again) beside the work. True if one came."""
        cancelled = False
        while not work.done():
            timeout = None if deadline is None else deadline - now()
            if timeout is not None and timeout <= 0:
                break
            try:
                await asyncio.wait({work}, timeout=timeout)
            except asyncio.CancelledError:
                if not cancelled:
                    log.warning("lease %r: cancelled again while the leader's work stops; the "
                                "cancel takes effect once it has stopped", self.name)
                cancelled = True
        return cancelled

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
