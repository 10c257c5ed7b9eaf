#!/usr/bin/env python3
"""The incident's kind of service: an asyncio bot that must run as exactly one
instance, with singleton_lock instead of a hand-written advisory-lock module.

    python3 examples/python/bot.py --dsn DSN --name NAME --ledger TABLE [--ttl 10s] [--priority N]

Every instance waits as a healthy standby for as long as it takes. The leader
prints "leader <token>" once on stdout and inserts (token, pid,
clock_timestamp()) into TABLE every 100 ms; each insert is a transaction that
first calls singleton_assert(NAME, token), so a stale leader's insert is
rejected by the database. If the lease is lost the work stops and the bot waits
as a standby again. With --priority N (extension 1.1), a newer deployment
started with a higher priority takes over: the running leader is asked to step
down, stops its work and hands the lease over. SIGTERM/SIGINT: stop, release,
exit 0.
Exit codes: 0 stopped by a signal, 1 fatal database error (extension missing,
permission denied), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Optional

_SOURCE_TREE = Path(__file__).resolve().parents[2] / "python"
if (_SOURCE_TREE / "singleton_lock").is_dir():
    sys.path.insert(0, str(_SOURCE_TREE))  # run from a checkout without installing

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

import singleton_lock  # noqa: E402

WRITE_EVERY = 0.1  # seconds between ledger inserts
CONNECT_TIMEOUT = 5.0
log = logging.getLogger("bot")


class Ledger:
    """The bot's own work: fenced inserts on its own connection."""

    def __init__(self, dsn: str, table: str) -> None:
        self._dsn = dsn
        self._table = sql.Identifier(*table.split("."))
        self._conn: Optional[psycopg.AsyncConnection] = None

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, prepare_threshold=None), CONNECT_TIMEOUT)
            self._conn = conn
            await conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (token bigint NOT NULL, pid integer NOT NULL, "
                "at timestamptz NOT NULL)").format(self._table))
        return self._conn

    async def write(self, lease: singleton_lock.Lease) -> None:
        """One insert, fenced. A single statement is a transaction of its own:
        singleton_assert runs first and, unless our token is still current,
        raises SQLSTATE 55000 and nothing is inserted; if it passes, a takeover
        waits until this transaction has committed."""
        try:
            conn = await self._connection()
            lease.check()  # lost meanwhile: send nothing more
            # (singleton_assert named in the extension's schema, never through
            # the search_path: docs/security.md)
            await conn.execute(sql.SQL(
                "WITH fence AS (SELECT {}.singleton_assert(%s, %s::bigint)) "
                "INSERT INTO {} (token, pid, at) SELECT %s::bigint, %s, "
                "pg_catalog.clock_timestamp() FROM fence").format(
                    sql.Identifier(lease.schema), self._table),
                (lease.name, lease.token, lease.token, os.getpid()))
        except asyncio.CancelledError:
            await self.abandon()
            raise
        except singleton_lock.LeaseLost:
            raise
        except psycopg.errors.ObjectNotInPrerequisiteState as error:  # 55000: fenced
            log.warning("insert rejected by singleton_assert (token %d): %s", lease.token,
                        str(error).splitlines()[0])
            raise singleton_lock.LeaseLost("fenced", str(error)) from None
        except (psycopg.Error, asyncio.TimeoutError, OSError) as error:
            log.warning("insert failed (token %d): %s", lease.token,
                        str(error).strip() or type(error).__name__)
            await self.abandon()  # reconnect at the next tick

    async def abandon(self) -> None:
        """Drop the connection; a statement still running is cancelled first."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await singleton_lock.abandon(conn)


async def lead(lease: singleton_lock.Lease, ledger: Ledger) -> None:
    """Runs while we lead; cancelled by singleton_lock when the lease is lost."""
    print(f"leader {lease.token}", flush=True)
    while True:
        write = asyncio.ensure_future(ledger.write(lease))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # A statement already sent cannot be recalled: learn its fate (the
            # fence decides), within the grace, then stop. (3/4 of it: the
            # grace runs from the same cancel, and past it the library logs a
            # warning and keeps the lease until we have stopped.)
            done, _ = await asyncio.wait({write}, timeout=lease.grace * 0.75)
            if not done:
                write.cancel()
            elif not write.cancelled() and write.exception() is None:
                log.info("the last insert (token %d) was committed before we stopped",
                         lease.token)
            raise
        await asyncio.sleep(WRITE_EVERY)


def duration(text: str) -> float:
    try:
        return singleton_lock.parse_duration(text, "--ttl")
    except singleton_lock.UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def table_name(text: str) -> str:
    parts = text.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"invalid table name {text!r} (TABLE or SCHEMA.TABLE)")
    return text


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="A singleton asyncio bot: writes a fenced ledger while it leads.")
    parser.add_argument("--dsn", required=True, help="libpq connection string or URI")
    parser.add_argument("--name", required=True, help="lease name (1..255 characters)")
    parser.add_argument("--ledger", required=True, type=table_name,
                        help="table to insert (token, pid, at) into; created if missing")
    parser.add_argument("--ttl", default="10s", type=duration,
                        help="lease TTL: 250ms, 10s, 2m, 1h (default 10s)")
    parser.add_argument("--priority", default=0, type=int,
                        help="an integer (default 0): a copy of higher priority takes the lease "
                             "over from a running leader of lower priority (extension 1.1)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    ledger = Ledger(args.dsn, args.ledger)
    try:
        await singleton_lock.run_as_leader(
            args.name, lambda lease: lead(lease, ledger), dsn=args.dsn, ttl=args.ttl,
            priority=args.priority)
    except singleton_lock.UsageError as error:
        log.error("%s", error)
        return 2
    except singleton_lock.ServerError as error:
        log.error("giving up: %s (SQLSTATE %s)", error, error.sqlstate)
        return 1
    finally:
        await ledger.abandon()
    log.info("stopped")
    return 0


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s bot[{os.getpid()}]: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
