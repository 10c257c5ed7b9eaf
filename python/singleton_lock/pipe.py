"""Statements sent while an earlier one still runs, on one connection.

The leader keeps singleton_watch in flight between heartbeats. Its next
statement (a heartbeat, the release) is sent at once, queued behind the watch
in libpq's pipeline mode, and the server ends the watch ('held') as soon as
that statement arrives (extension 1.1): no cancel request, for which the
server forks a process (tens of ms on a busy machine), is needed to get the
connection back. Each statement is followed by a Sync of its own, so an error
ends that statement only.

Why libpq (conn.pgconn) rather than psycopg's pipeline(): psycopg fetches a
reply while holding the connection's lock, so nothing could be sent while the
watch's reply is awaited. The Link keeps psycopg off the connection while a
statement is in flight here; the connection leaves pipeline mode once every
reply is in.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable, Deque, NamedTuple, Optional, Tuple

import psycopg
from psycopg import adapt, pq

from .errors import DatabaseUnavailableError, Error, translate

now = time.monotonic


def dispatch_notifies(pgconn: pq.abc.PGconn) -> None:
    """Hand every notification libpq has read to the connection's handler."""
    while True:
        notify = pgconn.notifies()
        if notify is None:
            return
        if pgconn.notify_handler:
            pgconn.notify_handler(notify)


class Reply(NamedTuple):
    row: Optional[Tuple[Any, ...]]  # the first row (None for none, or on error)
    error: Optional[Error]
    interrupted: bool = False  # we sent a cancel request while it ran


class PipedCall:
    """One statement sent through the Pipe; `future` gets its Reply (never an
    exception, so an abandoned call warns nobody)."""

    def __init__(self, future: "asyncio.Future[Reply]", waits: bool) -> None:
        self.future = future
        self.waits = waits  # it waits in the server until the next statement (a watch)
        # Done once data came in while this call was the first in flight: the
        # server has read it (the extension sends the start of a watch's reply
        # as the watch begins to wait).
        self.heard: "asyncio.Future[None]" = future.get_loop().create_future()
        self.sent_at = now()
        self.interrupted = False
        self.result: Optional[pq.abc.PGresult] = None  # (an error is kept over later results)

    def done(self) -> bool:
        return self.future.done()

    def reply(self) -> Reply:
        return self.future.result()


class Pipe:
    """Sends statements in pipeline mode and hands each its reply, in order.
    `on_broken(why)` is called once if the connection breaks meanwhile."""

    def __init__(self, conn: "psycopg.AsyncConnection[Any]",
                 on_broken: Callable[[str], None]) -> None:
        self._conn = conn
        self._on_broken = on_broken
        self._calls: Deque[PipedCall] = deque()
        self._fd: Optional[int] = None  # while reading (and maybe writing)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._writing = False

    @property
    def busy(self) -> bool:
        return bool(self._calls)

    def waiting_call(self) -> Optional[PipedCall]:
        """The last call in flight that waits in the server, if any."""
        return next((c for c in reversed(self._calls) if c.waits and not c.done()), None)

    def send(self, query: bytes, waits: bool) -> PipedCall:
        """Send `query` (parameters already bound: ClientCursor.mogrify) now."""
        loop = asyncio.get_running_loop()
        call = PipedCall(loop.create_future(), waits)
        pgconn = self._conn.pgconn
        try:
            if pgconn.pipeline_status == pq.PipelineStatus.OFF:
                pgconn.enter_pipeline_mode()
            pgconn.send_query_params(query, None)
            pgconn.pipeline_sync()
            self._calls.append(call)
            self._start_io(loop)
            self._flush()
        except psycopg.Error as error:
            if call not in self._calls:
                call.future.set_result(Reply(None, translate(error)))
            self._break(str(error).strip() or "sending failed")
        return call

    def close(self, why: str) -> None:
        """Stop reading; every call still in flight gets a DatabaseUnavailableError."""
        self._stop_io()
        while self._calls:
            call = self._calls.popleft()
            if not call.done():
                call.future.set_result(Reply(None, DatabaseUnavailableError(why),
                                             call.interrupted))

    # --- I/O ----------------------------------------------------------------
    def _start_io(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._fd is None:
            self._fd, self._loop = self._conn.pgconn.socket, loop
            loop.add_reader(self._fd, self._readable)

    def _stop_io(self) -> None:
        if self._fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
            if self._writing:
                self._loop.remove_writer(self._fd)
        self._fd, self._writing = None, False

    def _flush(self) -> None:
        """Send what libpq buffered; the rest when the socket takes it."""
        more = self._conn.pgconn.flush() != 0
        if self._fd is None or self._loop is None or more == self._writing:
            return
        if more:
            self._loop.add_writer(self._fd, self._writable)
        else:
            self._loop.remove_writer(self._fd)
        self._writing = more

    def _writable(self) -> None:
        try:
            self._flush()
        except psycopg.Error as error:
            self._break(str(error).strip() or "sending failed")

    def _readable(self) -> None:
        pgconn = self._conn.pgconn
        if self._calls and not self._calls[0].heard.done():
            self._calls[0].heard.set_result(None)
        try:
            pgconn.consume_input()
            dispatch_notifies(pgconn)
            self._take_results(pgconn)
            if pgconn.status == pq.ConnStatus.BAD:
                raise psycopg.OperationalError("the server closed the connection")
            if not self._calls:  # every reply is in: psycopg may use the connection again
                self._stop_io()
                pgconn.exit_pipeline_mode()
        except psycopg.Error as error:
            self._break(str(error).strip() or "the connection broke")

    def _take_results(self, pgconn: pq.abc.PGconn) -> None:
        """Each statement: its result, NULL, then the PIPELINE_SYNC of its Sync."""
        ended = False  # a NULL just came: another one means nothing more is in yet
        while self._calls and not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                if ended:
                    break
                ended = True
                continue
            ended = False
            call = self._calls[0]
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                self._calls.popleft()
                call.future.set_result(self._reply(call))
            elif call.result is None or call.result.status != pq.ExecStatus.FATAL_ERROR:
                call.result = result

    def _reply(self, call: PipedCall) -> Reply:
        result = call.result
        if result is None:
            return Reply(None, None, call.interrupted)
        if result.status == pq.ExecStatus.FATAL_ERROR:
            error = psycopg.errors.error_from_result(result, encoding=self._conn.info.encoding)
            return Reply(None, translate(error), call.interrupted)
        if result.status != pq.ExecStatus.TUPLES_OK or result.ntuples == 0:
            return Reply(None, None, call.interrupted)
        loader = adapt.Transformer.from_context(self._conn)
        loader.set_pgresult(result)
        return Reply(loader.load_row(0, tuple), None, call.interrupted)

    def _break(self, why: str) -> None:
        self.close(why)
        self._on_broken(why)
