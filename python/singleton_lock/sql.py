"""The SQL the client sends, in one place (the contract: SPEC.md, "SQL contract").
Plain parameterized statements, never server-side prepared ones, so that
transaction poolers (PgBouncer) work."""

from __future__ import annotations

from typing import Optional

from psycopg import sql


class Statements:
    def __init__(self, schema: Optional[str] = None) -> None:
        prefix = sql.SQL("{}.").format(sql.Identifier(schema)) if schema else sql.SQL("")

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=prefix)

        # (name, ttl, holder, wait)
        self.acquire = q(
            "SELECT acquired, token, holder, expires_at "
            "FROM {s}singleton_acquire(%s, %s::interval, %s, %s::interval)"
        )
        # (name, token, ttl)
        self.heartbeat = q("SELECT {s}singleton_heartbeat(%s, %s::bigint, %s::interval)")
        # (name, token)
        self.release = q("SELECT {s}singleton_release(%s, %s::bigint)")
        # (name, token): raises 55000 unless token holds a live lease
        self.assert_held = q("SELECT {s}singleton_assert(%s, %s::bigint)")

    listen = sql.SQL("LISTEN singleton_lock")
    channel = "singleton_lock"
    # 'off' (e.g. ALTER ROLE app SET singleton_lock.bind_session = off, for
    # transaction-pooled connections) means LISTEN would not work either.
    bind_session = sql.SQL("SELECT current_setting('singleton_lock.bind_session', true)")
