"""The SQL the client sends, in one place (the contract: SPEC.md, "SQL contract").
Plain parameterized statements, never server-side prepared ones, so that
transaction poolers (PgBouncer) work."""

from __future__ import annotations

from typing import NamedTuple, Optional

from psycopg import sql


class Statements:
    def __init__(self, schema: Optional[str] = None) -> None:
        prefix = sql.SQL("{}.").format(sql.Identifier(schema)) if schema else sql.SQL("")

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=prefix)

        # (name, ttl, holder, wait): the form every version has
        self.acquire = q(
            "SELECT acquired, token, holder, expires_at "
            "FROM {s}singleton_acquire(%s, %s::interval, %s, %s::interval)"
        )
        # (name, ttl, holder, wait, priority): version 1.1
        self.acquire_ranked = q(
            "SELECT acquired, token, holder, expires_at "
            "FROM {s}singleton_acquire(%s, %s::interval, %s, %s::interval, %s::integer)"
        )
        # (name, token, wait) -> 'held' | 'step_down' | 'lost': version 1.1
        self.watch = q("SELECT {s}singleton_watch(%s, %s::bigint, %s::interval)")
        # The first statement on every connection of ours: the transactions'
        # defaults, whatever the role's or database's. READ COMMITTED (under
        # REPEATABLE READ or SERIALIZABLE the server refuses a waiting acquire
        # or watch: its snapshot would never see the release); read-write (a
        # role or database may default to read-only, under which every call
        # but the watch is refused); not deferrable. A statement of its own
        # (defaults apply from the next transaction), and a SET: with the
        # defaults SERIALIZABLE, READ ONLY and DEFERRABLE together any
        # statement that takes a snapshot (a SELECT, even of constants) first
        # waits for a safe one, as long as the serializable read-write
        # transactions then open run; a SET takes no snapshot.
        self.characteristics = sql.SQL(
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED, "
            "READ WRITE, NOT DEFERRABLE")
        # The second, the probe: what the server offers, without an error on
        # any version (or none): (bind_session setting, 1.1 acquire exists,
        # 1.0 acquire exists, may watch, the server's backend pid: a pooler
        # hands out a pid of its own, the session's statement_timeout in ms,
        # or transaction_timeout (PostgreSQL 17) if shorter: our waits must
        # stay under it, three set_config results, and the extension's schema
        # in this database: NULL if it is not installed); it also sets the
        # rest of the session's own settings: idle_session_timeout off (ours
        # may idle between heartbeats by design, and a server that ended it
        # would end the leadership it holds); no lock_timeout (a standby's
        # acquire and a release queue for the lease behind the leader's
        # asserting transactions: a lock_timeout would fail them and lose
        # their place; our own deadlines bound every call); and ISO dates,
        # the only DateStyle psycopg reads timestamps in.
        # Without schema=, the elector then names the schema found in every
        # call (and the probe looks there): never the search_path, whose
        # "$user" comes first: a role with CREATE on the database could make
        # a schema named after our role, with functions of our signatures
        # that our calls would run with our rights. Built-ins are named
        # pg_catalog's, with operands of their exact types, for that reason.
        self.schema = schema
        self.probe_params = ('"' + schema.replace('"', '""') + '".' if schema else None,)
        self.probe = sql.SQL(
            "SELECT pg_catalog.current_setting('singleton_lock.bind_session', true), "
            "pg_catalog.to_regprocedure(pg_catalog.textcat(p.at, "
            "'singleton_acquire(text,interval,text,interval,integer)')) IS NOT NULL, "
            "pg_catalog.to_regprocedure(pg_catalog.textcat(p.at, "
            "'singleton_acquire(text,interval,text,interval)')) IS NOT NULL, "
            "coalesce(pg_catalog.has_function_privilege(pg_catalog.to_regprocedure("
            "pg_catalog.textcat(p.at, 'singleton_watch(text,bigint,interval)')), 'EXECUTE'), "
            "false), "
            "pg_catalog.pg_backend_pid(), "
            "coalesce(least(nullif(extract(epoch FROM pg_catalog.current_setting("
            "'statement_timeout')::interval)::numeric, 0::numeric), nullif(extract(epoch FROM "
            "coalesce(pg_catalog.current_setting('transaction_timeout', true), '0')::interval)"
            "::numeric, 0::numeric)) * 1000::numeric, 0::numeric)::bigint, "
            "pg_catalog.set_config('idle_session_timeout', '0', false), "
            "pg_catalog.set_config('lock_timeout', '0', false), "
            "pg_catalog.set_config('DateStyle', 'ISO', false), "
            "p.found "
            # at: the given schema's prefix, else the found one's, else NULL
            # (every to_regprocedure NULL: not installed)
            "FROM (SELECT coalesce(%s::pg_catalog.text, pg_catalog.textcat(pg_catalog.quote_ident("
            "e.found), '.')) AS at, e.found FROM (SELECT (SELECT n.nspname::pg_catalog.text "
            "FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_namespace n "
            "ON n.oid OPERATOR(pg_catalog.=) x.extnamespace WHERE x.extname "
            "OPERATOR(pg_catalog.=) 'singleton_lock'::pg_catalog.name) AS found) e) p"
        )
        # (name, token, ttl)
        self.heartbeat = q("SELECT {s}singleton_heartbeat(%s, %s::bigint, %s::interval)")
        # (name, token)
        self.release = q("SELECT {s}singleton_release(%s, %s::bigint)")
        # (name, token): raises 55000 unless token holds a live lease
        self.assert_held = q("SELECT {s}singleton_assert(%s, %s::bigint)")

    listen = sql.SQL("LISTEN singleton_lock")
    channel = "singleton_lock"


class ServerFeatures(NamedTuple):
    """What the connected server's extension offers the calling role."""

    bind_session: bool  # False: singleton_lock.bind_session = off (pooled): LISTEN would not work
    priority: bool  # singleton_acquire takes a priority (1.1)
    installed: bool  # some singleton_acquire exists (else the calls fail: extension missing)
    watch: bool  # singleton_watch exists (1.1) and the role may execute it
    statement_timeout: float = 0.0  # the session's, in seconds (0: off)
    schema: Optional[str] = None  # the extension's, in this database (None: not installed)

    @classmethod
    def from_probe(cls, row: Optional[tuple]) -> "ServerFeatures":  # type: ignore[type-arg]
        if row is None:
            return cls(True, False, False, False)
        setting, ranked, plain, watch = row[:4]
        timeout_ms = row[5] if len(row) > 5 and row[5] is not None else 0
        return cls(bind_session=setting not in ("off", "false", "0", "no"),
                   priority=bool(ranked), installed=bool(ranked or plain), watch=bool(watch),
                   statement_timeout=timeout_ms / 1000.0,
                   schema=row[9] if len(row) > 9 else None)
