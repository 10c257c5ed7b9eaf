"""One database connection of the elector: psycopg's AsyncConnection in
autocommit mode, without server-side prepared statements (PgBouncer), with
every call bounded in time and every abandoned call cancelled in the server."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import DatabaseUnavailableError, translate

CANCEL_LIMIT = 0.2  # how long we wait for a cancel request to be delivered (as the C++ client)


class ReplyTimeout(DatabaseUnavailableError):
    """No reply in time; the request was cancelled and the connection closed."""


class ConnectTimeout(DatabaseUnavailableError):
    """The server did not complete the connection in time (a silent host)."""


def build_conninfo(dsn: str, defaults: Dict[str, str], env: Dict[str, str]) -> str:
    """The user's DSN plus our defaults for what it (or PGCONNECT_TIMEOUT) leaves unset.
    Raises UsageError-like psycopg.ProgrammingError for a malformed DSN."""
    params: Dict[str, Any] = conninfo_to_dict(dsn)
    for key, value in defaults.items():
        if key in params or (key == "connect_timeout" and env.get("PGCONNECT_TIMEOUT")):
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
    must not hold up the caller or the interpreter's exit), then close it."""
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
                await asyncio.wait_for(asyncio.shield(done), CANCEL_LIMIT)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
    conn.pgconn.finish()  # what AsyncConnection.close() does, without a loop turn


class Link:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._busy = False
        self._watching: Optional[int] = None
        self.broken: Optional[str] = None  # why the connection broke, once it did

    @classmethod
    async def open(cls, conninfo: str, timeout: float) -> "Link":
        try:
            conn = await asyncio.wait_for(
                psycopg.AsyncConnection.connect(conninfo, autocommit=True, prepare_threshold=None),
                timeout,
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
        call: it is cancelled in the server and the connection is closed."""
        if self.broken or self._conn.closed:
            raise DatabaseUnavailableError(self.broken or "the connection is closed")
        self._busy = True
        try:
            cursor = await asyncio.wait_for(self._conn.execute(statement, params),
                                            None if timeout is None else max(timeout, 0))
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
            typed = translate(error)
            if isinstance(typed, DatabaseUnavailableError):
                self.broken = str(typed)
                self.close()
            raise typed from None

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
        busy, self._busy = self._busy, False
        self.unwatch()
        await abandon(self._conn, busy)

    def watch(self, on_input: Callable[[], None]) -> None:
        """While idle: read what the server sends (notifications, or the end of
        the connection) as soon as it arrives, then call on_input()."""
        if self._conn.closed or self._watching is not None:
            return
        fd = self._conn.fileno()
        loop = asyncio.get_running_loop()

        def readable() -> None:
            pgconn = self._conn.pgconn
            try:
                pgconn.consume_input()
                while True:
                    notify = pgconn.notifies()
                    if notify is None:
                        break
                    if pgconn.notify_handler:
                        pgconn.notify_handler(notify)
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
        self._busy = False
        if not self._conn.closed:
            self._conn.pgconn.finish()  # AsyncConnection.close() without a loop turn

