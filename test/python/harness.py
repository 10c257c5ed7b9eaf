"""Shared by the Python and Node example tests: the server from the PG*
environment (test/run_all.sh exports it), example processes with timestamped
output, the ledger checker, and a TCP relay that can freeze a connection."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import logging
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import psycopg

ROOT = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
BOT = [PYTHON, str(ROOT / "examples/python/bot.py")]
WORKER = ["node", str(ROOT / "examples/node/worker.js")]
WAIT = 60.0  # generous: the machine is shared and noisy; waits end on events


def admin(dsn: str = "") -> psycopg.Connection:
    """A superuser connection (autocommit): the PG* environment's server, or `dsn`."""
    return psycopg.connect(dsn, autocommit=True)


@contextlib.contextmanager
def scratch_database(prefix: str, extension: bool = True) -> Iterator[str]:
    """A database of the test's own (with the extension unless told not),
    dropped at the end; its name."""
    name = unique(prefix)
    with admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        if extension:
            with admin(f"dbname={name}") as conn:
                conn.execute("CREATE EXTENSION singleton_lock")
        yield name
    finally:
        with admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def plant_acquire_trap(database: str) -> Callable[[], int]:
    """Someone else's singleton_acquire in `database`'s public schema (one
    without the extension), recording its calls; returns their counter."""
    dsn = f"dbname={database}"
    with admin(dsn) as conn:
        conn.execute("CREATE TABLE calls (fn text)")
        conn.execute("CREATE FUNCTION singleton_acquire(text, interval, text, interval, "
                     "OUT acquired boolean, OUT token bigint, OUT holder text, "
                     "OUT expires_at timestamptz) RETURNS record LANGUAGE sql AS "
                     "$$ INSERT INTO calls VALUES ('singleton_acquire'); "
                     "SELECT false, NULL::bigint, NULL::text, NULL::timestamptz $$")

    def calls() -> int:
        with admin(dsn) as conn:
            return conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    return calls


def tcp_dsn(port: Optional[int] = None, user: Optional[str] = None, **extra: str) -> str:
    """A DSN for the example programs over TCP (the server listens on 127.0.0.1)."""
    parts = {"host": "127.0.0.1", "port": str(port or os.environ["PGPORT"]),
             "user": user or os.environ.get("PGUSER", "postgres"),
             "dbname": os.environ.get("PGDATABASE", "postgres"), "sslmode": "disable"}
    parts.update(extra)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def create_app_role(conn: psycopg.Connection, role: str, pooled: bool) -> None:
    """A login role with EXECUTE on the application's functions (whatever the
    installed version's signatures) and CREATE on public (the bots' ledgers);
    pooled: singleton_lock.bind_session = off, as behind a transaction pooler."""
    conn.execute(f"CREATE ROLE {role} LOGIN")
    if pooled:
        conn.execute(f"ALTER ROLE {role} SET singleton_lock.bind_session = off")
    functions = conn.execute(
        "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p "
        "JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' "
        "JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'singleton_lock' "
        "WHERE p.proname IN ('singleton_acquire', 'singleton_heartbeat', "
        "'singleton_release', 'singleton_assert', 'singleton_bind', 'singleton_watch')"
    ).fetchone()[0]
    conn.execute(f"GRANT EXECUTE ON FUNCTION {functions} TO {role}")
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")


def pgbouncer_ini(workdir: Path, listen_port: int, server_port: int, extra: str = "") -> str:
    """A PgBouncer in transaction pooling mode on 127.0.0.1:listen_port, in
    front of 127.0.0.1:server_port; users.txt, log and pid file in workdir."""
    return f"""[databases]
* = host=127.0.0.1 port={server_port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 50
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
{extra}"""


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def ensure_extension() -> None:
    with admin() as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("CREATE EXTENSION IF NOT EXISTS singleton_lock")


class Instance:
    """One example process (bot.py or worker.js). stdout lines are collected
    with the monotonic time they arrived; stderr goes to a log file."""

    def __init__(self, command: Sequence[str], label: str, logdir: Path) -> None:
        self.label = label
        self.log_path = logdir / f"{label}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=self._log,
                                     cwd=ROOT)
        self.lines: "queue.Queue[Tuple[float, str]]" = queue.Queue()
        self.seen: List[Tuple[float, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def next_leader(self, timeout: float = WAIT) -> Optional[Tuple[float, int]]:
        """(arrival time, token) of the next "leader <token>" line, None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            self.seen.append((at, line))
            match = re.fullmatch(r"leader (\d+)", line)
            assert match, f"{self.label}: unexpected stdout line {line!r}"
            return at, int(match.group(1))

    def wait_stderr(self, pattern: str, timeout: float = WAIT, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.stderr())) >= count:
                return True
            if self.proc.poll() is not None:
                return len(re.findall(pattern, self.stderr())) >= count
            time.sleep(0.02)
        return False

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Best-effort cleanup (SIGCONT in case it was stopped, then SIGKILL)."""
        if self.proc.poll() is None:
            for signum in (signal.SIGCONT, signal.SIGKILL):
                try:
                    self.proc.send_signal(signum)
                except ProcessLookupError:
                    pass
            self.proc.wait(10)
        self._log.close()


def wait_until(predicate, timeout: float = WAIT, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


async def wait_until_async(predicate, timeout: float = WAIT) -> bool:
    """wait_until for tests whose electors run in the test's own event loop:
    `predicate` (which may query the database) runs off the loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.get_running_loop().run_in_executor(None, predicate):
            return True
        await asyncio.sleep(0.02)
    return False


Row = Tuple[int, int, object, int]  # token, pid, at, xid


def ledger(table: str, dsn: str = "") -> List[Row]:
    """The ledger in insertion order (clock_timestamp at insert)."""
    with admin(dsn) as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            f'SELECT token, pid, at, xmin::text::bigint FROM "{table}" ORDER BY at, xmin::text::bigint')]


def check_ledger(rows: List[Row]) -> List[Tuple[int, int, int]]:
    """Exactly one writer at a time: by insertion time AND by transaction id
    order, the token sequence never decreases and each token's rows form one
    contiguous run (no interleaving); one pid per token. Returns the runs
    (token, pid, rows)."""
    assert rows, "the ledger is empty"
    for order_name, ordered in (("time", rows), ("xid", sorted(rows, key=lambda r: r[3]))):
        tokens = [r[0] for r in ordered]
        assert tokens == sorted(tokens), f"tokens go backwards in {order_name} order: {tokens}"
    runs: List[Tuple[int, int, int]] = []
    for token, pid, _, _ in rows:
        if runs and runs[-1][0] == token:
            assert runs[-1][1] == pid, f"token {token} used by two processes"
            runs[-1] = (token, pid, runs[-1][2] + 1)
        else:
            assert all(t != token for t, _, _ in runs), f"token {token} interleaved"
            runs.append((token, pid, 1))
    by_token: Dict[int, List[Row]] = {}
    for row in rows:
        by_token.setdefault(row[0], []).append(row)
    tenures = sorted(by_token.values(), key=lambda rs: rs[0][0])
    for before, after in zip(tenures, tenures[1:]):
        assert max(r[2] for r in before) < min(r[2] for r in after), "tenures overlap in time"
    return runs


def accept_each(listener: socket.socket, on_accept: Callable[[socket.socket], None]) -> None:
    """Hands each connection `listener` accepts to on_accept, until it is closed."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        on_accept(conn)


def relay(src: socket.socket, dst: socket.socket,
          on_data: Callable[[bytes], None] = lambda data: None) -> None:
    """Copies src to dst until either end closes or fails (on_data sees each
    chunk before it is sent on), then shuts both sockets down: one direction of
    a TCP relay (Freezer, Gate)."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            on_data(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Freezer:
    """A TCP relay 127.0.0.1:port -> target that can hold all traffic (both
    directions) and later deliver it in order: a network path that stalls.
    freeze(replies=False) holds only what the client sends, so a reply already
    on its way still arrives (the client's statement in flight completes);
    freeze() then holds the replies too."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._frozen = threading.Event()  # client -> server held
        self._replies_frozen = threading.Event()  # server -> client held
        self._thawed = threading.Condition()
        self.held = bytearray()  # client->server bytes that arrived while frozen
        self.replies = bytearray()  # server->client bytes relayed since the last thaw
        self._lock = threading.Lock()
        self._sockets: List[socket.socket] = []
        threading.Thread(target=accept_each, args=(self._listener, self._relay),
                         daemon=True).start()

    def freeze(self, replies: bool = True) -> None:
        self._frozen.set()
        if replies:
            self._replies_frozen.set()

    def thaw(self) -> None:
        with self._lock:
            self.replies.clear()
        self._frozen.clear()
        self._replies_frozen.clear()
        with self._thawed:
            self._thawed.notify_all()

    def held_text(self) -> str:
        with self._lock:
            return self.held.decode("latin-1")

    def replies_text(self) -> str:
        with self._lock:
            return self.replies.decode("latin-1")

    def close(self) -> None:
        self.thaw()
        self._listener.close()
        for s in list(self._sockets):
            try:
                s.close()
            except OSError:
                pass

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(self._target)
        self._sockets += [client, server]
        for src, dst, upstream in ((client, server, True), (server, client, False)):
            on_data = partial(self._pass, upstream=upstream)
            threading.Thread(target=relay, args=(src, dst, on_data), daemon=True).start()

    def _pass(self, data: bytes, upstream: bool) -> None:
        """Holds `data` while frozen (noting what the client sent), notes replies."""
        frozen = self._frozen if upstream else self._replies_frozen
        if frozen.is_set():
            if upstream:
                with self._lock:
                    self.held += data
            with self._thawed:
                self._thawed.wait_for(lambda: not frozen.is_set())
        if not upstream:
            with self._lock:
                self.replies += data


class SilentHost:
    """A host that never answers: accept=True accepts TCP connections and never
    replies (a hung server); accept=False never completes the TCP handshake
    (its accept queue is full and it never accepts: SYNs go unanswered, like a
    dead machine). `accepted` counts the connections that reached it."""

    def __init__(self, accept: bool = True, address: str = "127.0.0.1", port: int = 0) -> None:
        self._address = address
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((address, port))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self._held: List[socket.socket] = []
        if accept:
            threading.Thread(target=accept_each, args=(self._listener, self._hold),
                             daemon=True).start()
        else:
            self._fill_queue()

    def _fill_queue(self) -> None:
        for _ in range(4):  # more than the queue holds (backlog 0: one, maybe two)
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect((self._address, self.port))
            except BlockingIOError:
                pass
            self._held.append(filler)
        time.sleep(0.2)

    def _hold(self, conn: socket.socket) -> None:
        self.accepted += 1
        self._held.append(conn)

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for s in self._held:
            s.close()


class Gate:
    """A TCP relay 127.0.0.1:port -> target that can go down: close() severs
    every relayed connection and refuses new ones (nothing listens on the
    port); open() listens on the same port again. Counts accepted connections."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._lock = threading.Lock()
        self._sockets: List[socket.socket] = []
        self._listener: Optional[socket.socket] = None
        self.accepted = 0
        self.port = 0
        self.open()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=accept_each, args=(listener, self._relay), daemon=True).start()

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close does not)
            except OSError:
                pass
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(self._target)
        with self._lock:
            self.accepted += 1
            self._sockets += [client, server]
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=relay, args=(src, dst), daemon=True).start()


def first_leader(instances: Sequence[Instance],
                 timeout: float = WAIT) -> Optional[Tuple[Instance, float, int]]:
    """The first of `instances` to print a leader line: (instance, time, token)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for instance in instances:
            if not instance.lines.empty():
                got = instance.next_leader(0.01)
                if got:
                    return instance, got[0], got[1]
        time.sleep(0.005)
    return None


def rows_of(table: str, token: int, dsn: str = "") -> int:
    with admin(dsn) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}" WHERE token = %s', (token,)).fetchone()
    return int(row[0]) if row else 0


def wait_rows(table: str, token: int, count: int, timeout: float = WAIT, dsn: str = "") -> bool:
    def enough() -> bool:
        try:
            return rows_of(table, token, dsn) >= count
        except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
            return False
    return wait_until(enough, timeout, every=0.05)


def lease_state(name: str, dsn: str = "") -> Optional[Tuple[str, Optional[int]]]:
    """(state, holder_pid) from the administrators' view (of `dsn`'s database)."""
    with admin(dsn) as conn:
        row = conn.execute("SELECT state, holder_pid FROM singleton_leases WHERE name = %s",
                           (name,)).fetchone()
    return (row[0], row[1]) if row else None


def fenced_work(name: str, token: object, seconds: float,
                dsn: str = "") -> "concurrent.futures.Future[str]":
    """The leader's last piece of work: a transaction that calls
    singleton_assert(name, token), then sleeps `seconds`, in a thread. Returns
    once it sleeps (the assert has run: the lease's row is locked until the
    transaction ends); its future gives 'held'."""
    future: "concurrent.futures.Future[str]" = concurrent.futures.Future()

    def work() -> None:
        try:
            with admin(dsn) as conn:
                future.set_result(conn.execute(
                    "SELECT 'held' FROM (SELECT singleton_assert(%s, %s), pg_sleep(%s)) w",
                    (name, token, seconds)).fetchone()[0])
        except BaseException as error:  # (for the test to see)
            future.set_exception(error)

    def sleeping() -> bool:
        with admin(dsn) as conn:
            (count,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = "
                                    "'PgSleep' AND query LIKE '%%singleton_assert%%'").fetchone()
            return count == 1

    threading.Thread(target=work, daemon=True).start()
    assert wait_until(lambda: sleeping() or future.done(), WAIT) and not future.done(), \
        f"the work did not begin: {future.exception() if future.done() else 'timeout'}"
    return future


DEFERRABLE_DEFAULTS = ("-c default_transaction_isolation=serializable "
                       "-c default_transaction_read_only=on -c default_transaction_deferrable=on")


@contextlib.contextmanager
def serializable_batch(dsn: str = "") -> Iterator[None]:
    """A serializable read-write transaction kept open (a batch job): while it
    runs, under the defaults DEFERRABLE_DEFAULTS (a reporting role's) any
    statement that takes a snapshot, a SELECT of constants included, waits
    for a safe snapshot, in any database of the server. Checks that one does."""
    with admin(dsn) as batch:
        batch.execute("BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE")
        batch.execute("SELECT count(*) FROM pg_class")
        limited = f"{DEFERRABLE_DEFAULTS} -c statement_timeout=300"
        with psycopg.connect(dsn, options=limited, autocommit=True) as probe:
            try:
                probe.execute("SELECT 1")
                raise AssertionError("a SELECT under these defaults did not wait")
            except psycopg.errors.QueryCanceled:
                pass
        yield
        batch.execute("ROLLBACK")


def watch_in_flight(pid: Optional[int] = None, user: Optional[str] = None) -> bool:
    """Whether a backend (of `pid`, or of role `user`) is running singleton_watch."""
    with admin() as conn:
        return conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
            "'%%singleton_watch(%%' AND pid = coalesce(%s, pid) AND usename = "
            "coalesce(%s, usename)", (pid, user)).fetchone() is not None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class LogLines(logging.Handler):
    """The `singleton_lock` logger's messages (DEBUG and up) matching a pattern
    (its first group, if it has one)."""

    def __init__(self, pattern: str) -> None:
        super().__init__(logging.DEBUG)
        self.lines = []
        self._pattern = re.compile(pattern)
        self._logger = logging.getLogger("singleton_lock")

    def emit(self, record: logging.LogRecord) -> None:
        match = self._pattern.search(record.getMessage())
        if match:
            self.lines.append(match.group(1) if match.groups() else match.group(0))

    def __enter__(self) -> "LogLines":
        self._level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
