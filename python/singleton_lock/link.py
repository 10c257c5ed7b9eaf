"""One database connection of the elector: psycopg's AsyncConnection in
autocommit mode, without server-side prepared statements (PgBouncer), with
every call bounded in time and every abandoned call cancelled in the server.
A statement may be started and left in flight (the leader's singleton_watch):
the next one is then queued behind it (pipe.py), and a cancel request ends it
only on a server that does not end it when the next statement arrives."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import DatabaseUnavailableError, QueryCanceledError, translate
from .pipe import Pipe, PipedCall, Reply, dispatch_notifies
from .within import within

log = logging.getLogger("singleton_lock")
now = time.monotonic
CANCEL_LIMIT = 0.2  # how long we wait for a cancel request to be delivered (as the C++ client)
# How long a statement queued behind a watch waits for the server to end that
# watch before a cancel request ends it (a server whose watch does not end
# when the next statement arrives: a build of 1.1 older than that).
YIELD_WITHIN = 0.2
# How long a statement to be queued behind a watch waits for the server to
# begin answering that watch (the extension sends the start of its reply as
# the watch begins to wait). Sent before that, it could reach the server in
# the same read as the watch, which the server cannot notice.
HEARD_WITHIN = 0.1


class ReplyTimeout(DatabaseUnavailableError):
    """No reply in time; the request was cancelled and the connection closed."""


class ConnectTimeout(DatabaseUnavailableError):
    """The server did not complete the connection in time (a silent host)."""


# Defaults that also yield to the environment variable libpq reads for them.
_ENVIRONMENT = {"connect_timeout": "PGCONNECT_TIMEOUT", "client_encoding": "PGCLIENTENCODING"}


def build_conninfo(dsn: str, defaults: Dict[str, str], env: Dict[str, str]) -> str:
    """The user's DSN plus our defaults for what it (or PGCONNECT_TIMEOUT,
    PGCLIENTENCODING) leaves unset. Raises UsageError-like
    psycopg.ProgrammingError for a malformed DSN."""
    params: Dict[str, Any] = conninfo_to_dict(dsn)
    for key, value in defaults.items():
        if key in params or env.get(_ENVIRONMENT.get(key, "")):
            continue
        params[key] = value
    params.setdefault("fallback_application_name", "singleton_lock.py")
    return make_conninfo(**params)


def _send_cancel(cancel: Any, done: "asyncio.Future[None]",
                 loop: asyncio.AbstractEventLoop) -> None:
    """PQcancel (a pq.PGcancel) on a helper thread; `done` is set on the loop."""

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    try:
        cancel.cancel()
    except Exception:  # the server may be gone: nothing left to cancel then
        pass
    finally:
        try:
            loop.call_soon_threadsafe(finished)
        except RuntimeError:  # the loop has ended meanwhile: nobody waits any more
            pass


async def abandon(conn: "psycopg.AsyncConnection[Any]", busy: Optional[bool] = None) -> None:
    """Stop using `conn`: if a statement is still running on it (or `busy`),
    send the server a cancel request, waiting at most CANCEL_LIMIT for it to be
    delivered (from a daemon thread: PQcancel blocks, and a dead network path
    must not hold up the caller or the interpreter's exit), then close it. A
    cancel of the caller meanwhile closes it at once and is raised, never
    swallowed (it may be the SIGTERM that stops a standby)."""
    if conn.closed:
        return
    if busy is None:
        busy = conn.info.transaction_status == pq.TransactionStatus.ACTIVE
    if busy:
        try:
            cancel: Any = conn.pgconn.get_cancel()
        except psycopg.Error:
            cancel = None
        if cancel is not None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            threading.Thread(target=_send_cancel, args=(cancel, done, loop),
                             name="singleton-lock-cancel", daemon=True).start()
            try:
                await within(asyncio.shield(done), CANCEL_LIMIT)
            except asyncio.TimeoutError:
                pass
            except asyncio.CancelledError:
                conn.pgconn.finish()
                raise
    conn.pgconn.finish()  # what AsyncConnection.close() does, without a loop turn


class Link:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._busy = False
        self._watching: Optional[int] = None
        self._pipe = Pipe(conn, self._pipe_broke)
        self._cancel: Optional["asyncio.Future[None]"] = None  # ours, until delivered
        self.broken: Optional[str] = None  # why the connection broke, once it did
        # Whether the server ends a waiting statement (singleton_watch) when
        # the next one arrives; None until seen (the elector carries it over).
        self.yields: Optional[bool] = None

    @classmethod
    async def open(cls, conninfo: str, timeout: float) -> "Link":
        try:
            conn = await within(
                psycopg.AsyncConnection.connect(conninfo, autocommit=True, prepare_threshold=None),
                timeout, discard=lambda unused: unused.pgconn.finish(),
            )
        except asyncio.TimeoutError:
            raise ConnectTimeout(f"could not connect within {timeout:g} s") from None
        except psycopg.errors.ConnectionTimeout:  # psycopg's own connect_timeout
            raise ConnectTimeout(f"could not connect within {timeout:g} s") from None
        except psycopg.Error as error:
            raise translate(error) from None
        return cls(conn)

    @property
    def backend_pid(self) -> int:
        return self._conn.info.backend_pid

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def add_notify_handler(self, handler: Callable[[psycopg.Notify], None]) -> None:
        self._conn.add_notify_handler(handler)

    async def execute(self, statement: Any, params: Optional[Sequence[Any]],
                      timeout: Optional[float]) -> Optional[Tuple[Any, ...]]:
        """The first row of the reply (None for none). A reply later than
        `timeout` (None: no limit) or a cancellation of the caller abandons the
        call: it is cancelled in the server and the connection is closed.
        While a started statement is in flight, this one is queued behind it."""
        if self.broken or self._conn.closed:
            raise DatabaseUnavailableError(self.broken or "the connection is closed")
        give_up_at = None if timeout is None else now() + max(timeout, 0)
        await self._cancel_delivered(give_up_at)
        if self._pipe.busy:
            return await self._queued(statement, params, give_up_at)
        self._busy = True
        try:
            cursor = await within(self._conn.execute(statement, params), _left(give_up_at))
            row = await cursor.fetchone() if cursor.description else None
            self._busy = False
            return row
        except asyncio.TimeoutError:
            await self.abandon()
            raise ReplyTimeout(f"no reply from the server within {timeout:.3f} s") from None
        except asyncio.CancelledError:
            await self.abandon()
            raise
        except psycopg.Error as error:
            self._busy = False
            raise self._failed(translate(error)) from None

    async def start(self, statement: Any, params: Optional[Sequence[Any]],
                    timeout: float) -> PipedCall:
        """Send a statement that waits in the server (singleton_watch) and
        return once sent; its reply comes in the call's future. Until then,
        execute() queues behind it (see _queued). `timeout` bounds the wait
        for an earlier cancel request of ours to be delivered."""
        if self.broken or self._conn.closed:
            raise DatabaseUnavailableError(self.broken or "the connection is closed")
        await self._cancel_delivered(now() + timeout)
        query = psycopg.AsyncClientCursor(self._conn).mogrify(statement, params)
        return self._pipe.send(query.encode(self._conn.info.encoding), waits=True)

    async def _queued(self, statement: Any, params: Optional[Sequence[Any]],
                      give_up_at: Optional[float]) -> Optional[Tuple[Any, ...]]:
        """execute() while a started statement is in flight: sent at once,
        behind it. The server ends that one when this arrives; if it does not
        within YIELD_WITHIN (at once once known not to), a cancel request ends
        it. If that cancel hits this statement instead (the earlier one had
        just ended), it is sent again once the cancel was delivered."""
        waiting = self._pipe.waiting_call()
        asked_at = now()
        if waiting is not None and self.yields is not False:
            await self._until_heard(waiting, give_up_at)
            if self.broken or self._conn.closed:
                raise DatabaseUnavailableError(self.broken or "the connection is closed")
            if not self._pipe.busy:  # the watch ended meanwhile: nothing to queue behind
                return await self.execute(statement, params, _left(give_up_at))
            waiting = self._pipe.waiting_call()
        query = psycopg.AsyncClientCursor(self._conn).mogrify(statement, params)
        call = self._pipe.send(query.encode(self._conn.info.encoding), waits=False)
        cancelled = False
        try:
            if waiting is not None:
                cancelled = await self._end_waiting(waiting, give_up_at, asked_at)
            reply: Reply = await within(asyncio.shield(call.future), _left(give_up_at))
        except asyncio.TimeoutError:
            await self.abandon()
            raise ReplyTimeout("no reply from the server in time") from None
        except asyncio.CancelledError:
            await self.abandon()
            raise
        if cancelled and isinstance(reply.error, QueryCanceledError):
            log.debug("our cancel request hit the queued statement (the one before had just "
                      "ended): sending it again")
            return await self.execute(statement, params, _left(give_up_at))
        if reply.error is not None:
            raise self._failed(reply.error)
        return reply.row

    @staticmethod
    async def _until_heard(waiting: PipedCall, give_up_at: Optional[float]) -> None:
        """Wait, at most HEARD_WITHIN, until the server has begun to answer
        `waiting` (or it ended); a build of the extension that does not say so
        costs that long once per queued statement."""
        if waiting.heard.done() or waiting.done():
            return
        left = _left(give_up_at)
        limit = HEARD_WITHIN if left is None else min(HEARD_WITHIN, left)
        await asyncio.wait({waiting.heard, waiting.future}, timeout=limit,
                           return_when=asyncio.FIRST_COMPLETED)

    async def _end_waiting(self, waiting: PipedCall, give_up_at: Optional[float],
                           queued_at: float) -> bool:
        """Wait for the server to end `waiting` now that a statement is queued
        behind it (YIELD_WITHIN from `queued_at`, when the caller asked, the
        wait for the server's first answer included); else cancel it. True if
        a cancel request was sent."""
        if self.yields is not False:
            left = _left(give_up_at)
            budget = max(0.0, YIELD_WITHIN - (now() - queued_at))
            await asyncio.wait({waiting.future},
                               timeout=budget if left is None else min(budget, left))
            if waiting.done():
                if waiting.reply().error is None:
                    self.yields = True
                return False
            # (sent just before, it may have reached the server together with
            # this one, which the server then cannot notice: learn nothing)
            if queued_at - waiting.sent_at >= YIELD_WITHIN:
                self.yields = False
                log.info("the server did not end singleton_watch when the next statement "
                         "arrived (a build of extension 1.1 older than that): a cancel request "
                         "ends it from now on")
        waiting.interrupted = True
        self._cancel = self.interrupt()
        return True

    async def _cancel_delivered(self, give_up_at: Optional[float]) -> None:
        """Send nothing while a cancel request of ours may still arrive: it
        would hit that statement. Past the limit, give the connection up."""
        if self._cancel is None or self._cancel.done():
            return
        limit = _left(give_up_at)
        try:
            await within(asyncio.shield(self._cancel), limit)
        except asyncio.TimeoutError:
            self.close()
            raise DatabaseUnavailableError("a cancel request was not delivered in time; "
                                           "the connection was given up") from None

    def _failed(self, error: Exception) -> Exception:
        if isinstance(error, DatabaseUnavailableError):
            self.broken = str(error)
            self.close()
        return error

    def _pipe_broke(self, why: str) -> None:
        self.broken = why
        self.close()

    def interrupt(self) -> "asyncio.Future[None]":
        """Ask the server to cancel the statement in flight, keeping the
        connection (it then fails with 57014). The future is done once the
        cancel request was delivered (or could not be): only then may another
        statement be sent, else the late cancel could hit that one instead."""
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        try:
            cancel: Any = self._conn.pgconn.get_cancel()
        except psycopg.Error:
            delivered.set_result(None)
            return delivered
        threading.Thread(target=_send_cancel, args=(cancel, delivered, loop),
                         name="singleton-lock-cancel", daemon=True).start()
        return delivered

    async def abandon(self) -> None:
        """Cancel the request in flight, then close the connection."""
        busy, self._busy = self._busy or self._pipe.busy, False
        self.unwatch()
        self._pipe.close("the call was abandoned")
        await abandon(self._conn, busy)

    def watch(self, on_input: Callable[[], None]) -> None:
        """While idle: read what the server sends (notifications, or the end of
        the connection) as soon as it arrives, then call on_input()."""
        if self._conn.closed or self._watching is not None or self._pipe.busy:
            return
        fd = self._conn.fileno()
        loop = asyncio.get_running_loop()

        def readable() -> None:
            pgconn = self._conn.pgconn
            try:
                pgconn.consume_input()
                dispatch_notifies(pgconn)
                if pgconn.status == pq.ConnStatus.BAD:
                    raise psycopg.OperationalError("the server closed the connection")
            except psycopg.Error as error:
                self.broken = str(error).strip() or "the connection broke"
                self.unwatch()
            on_input()

        loop.add_reader(fd, readable)
        self._watching = fd

    def unwatch(self) -> None:
        if self._watching is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._watching)
            except (RuntimeError, ValueError, OSError):
                pass
            self._watching = None

    def close(self) -> None:
        self.unwatch()
        self._pipe.close(self.broken or "the connection was closed")
        self._busy = False
        if not self._conn.closed:
            self._conn.pgconn.finish()  # AsyncConnection.close() without a loop turn


def _left(give_up_at: Optional[float]) -> Optional[float]:
    """Seconds until `give_up_at` (None: no limit)."""
    return None if give_up_at is None else max(give_up_at - now(), 0.0)
