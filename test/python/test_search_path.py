"""Without schema=, the library calls the extension's functions in the
extension's own schema, never through the search_path. Its default, "$user",
public, searches first a schema named after the role: a role with CREATE on
the database could create one and, in it, functions of our signatures,
which an unqualified call would run with the service's rights."""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
import pytest

import singleton_lock
from singleton_lock import State

from harness import WAIT, admin, create_app_role, scratch_database, tcp_dsn, unique, wait_until_async

pytestmark = pytest.mark.usefixtures("extension")

# (signature, result, arguments to pass on): every function the library calls,
# and singleton_bind, which it does not call (yet)
SHADOWED = (
    ("singleton_acquire(text, interval, text, interval)",
     "TABLE(acquired boolean, token bigint, holder text, expires_at timestamptz)",
     "$1, $2, $3, $4"),
    ("singleton_acquire(text, interval, text, interval, integer)",
     "TABLE(acquired boolean, token bigint, holder text, expires_at timestamptz)",
     "$1, $2, $3, $4, $5"),
    ("singleton_heartbeat(text, bigint, interval)", "timestamptz", "$1, $2, $3"),
    ("singleton_release(text, bigint)", "boolean", "$1, $2"),
    ("singleton_watch(text, bigint, interval)", "text", "$1, $2, $3"),
    ("singleton_assert(text, bigint)", "void", "$1, $2"),
    ("singleton_bind(text, bigint)", "boolean", "$1, $2"),
)


def plant_shadows(conn: psycopg.Connection, attacker: str, victim: str) -> None:
    """As `attacker` (CREATE on the database): schema `victim` (the victim
    role's "$user"), usable by everyone, with a shadow of each function in
    SHADOWED that records who called it in `victim`.shadow_calls and then
    passes the call on to the extension's (the victim notices nothing)."""
    ext = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                       "WHERE extname = 'singleton_lock'").fetchone()[0]
    conn.execute(f"SET ROLE {attacker}")
    try:
        conn.execute(f"CREATE SCHEMA {victim}")
        conn.execute(f"GRANT USAGE ON SCHEMA {victim} TO PUBLIC")
        conn.execute(f"CREATE TABLE {victim}.shadow_calls (fn text, caller name, "
                     "at timestamptz DEFAULT clock_timestamp())")
        conn.execute(f"GRANT INSERT ON {victim}.shadow_calls TO PUBLIC")
        for signature, result, args in SHADOWED:
            fn = signature.split("(")[0]
            conn.execute(
                f"CREATE FUNCTION {victim}.{signature} RETURNS {result} LANGUAGE sql AS $$ "
                f"INSERT INTO {victim}.shadow_calls (fn, caller) VALUES ('{signature}', "
                "current_user); "
                f"SELECT {'*' if result.startswith('TABLE') else ''} "
                f"{'FROM ' if result.startswith('TABLE') else ''}{ext}.{fn}({args}) $$")
        # Operators that need no cast where pg_catalog's do beat pg_catalog's
        # although it is searched first.
        for op, fn, result in (("=", "op_eq", "boolean"), ("*", "op_mul", "numeric")):
            conn.execute(
                f"CREATE FUNCTION {victim}.{fn}(numeric, integer) RETURNS {result} LANGUAGE sql "
                f"AS $$ INSERT INTO {victim}.shadow_calls (fn, caller) VALUES ('operator {op}', "
                f"current_user); SELECT $1 OPERATOR(pg_catalog.{op}) $2::numeric $$")
            conn.execute(f"CREATE OPERATOR {victim}.{op} (leftarg = numeric, rightarg = integer, "
                         f"function = {victim}.{fn})")
    finally:
        conn.execute("RESET ROLE")


def shadow_calls(victim: str) -> Counter:
    """How often each (shadow, calling role) ran."""
    with admin() as conn:
        return Counter(tuple(row) for row in conn.execute(
            f"SELECT fn, caller FROM {victim}.shadow_calls ORDER BY at"))


def lease_row(name: str):
    """(state, token, holder, holder_role, renewed since acquired) from the view."""
    with admin() as conn:
        return conn.execute(
            "SELECT state, token, holder, holder_role::text, renewed_at > acquired_at "
            "FROM singleton_leases WHERE name = %s", (name,)).fetchone()


async def test_a_schema_named_after_the_role_does_not_capture_our_calls():
    """An attacker with CREATE on the database shadows every function in a
    schema named after the service's role. The service, with the library's
    defaults (no schema=), acquires, renews by heartbeats, is asked to step
    down by a waiter of higher priority (singleton_watch), fences a
    transaction (assert_held), releases and hands over to that waiter, who
    then releases too: all on the real lease, and no shadow ever runs."""
    app, attacker = unique("sl_sp_app"), unique("sl_sp_attacker")
    name = unique("sp")
    electors = []
    with admin() as conn:
        create_app_role(conn, app, pooled=False)
        conn.execute(f"CREATE ROLE {attacker}")
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f'GRANT CREATE ON DATABASE "{database}" TO {attacker}')
        plant_shadows(conn, attacker, app)
    try:
        dsn = tcp_dsn(user=app)
        # The attack is live: an unqualified call of the app role runs the shadow.
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT singleton_release(%s, 1)", (name,)).fetchone() == (False,)
            assert conn.execute("SELECT nullif(1.5, 0)").fetchone()[0] == 1.5  # (numeric, integer)
        assert shadow_calls(app) == {("singleton_release(text, bigint)", app): 1,
                                     ("operator =", app): 1}
        with admin() as conn:
            conn.execute(f"DELETE FROM {app}.shadow_calls")

        leader = singleton_lock.AsyncElector(name, ttl="1s", dsn=dsn)
        electors.append(leader)
        lease = await asyncio.wait_for(leader.acquire(), WAIT)
        assert lease_row(name)[:4] == ("held", lease.token, leader.holder, app)
        better = singleton_lock.AsyncElector(name, ttl="1s", dsn=dsn, priority=1)
        electors.append(better)
        waiting = asyncio.ensure_future(better.acquire())
        await asyncio.wait_for(lease.step_down_requested.wait(), WAIT)  # (the leader's watch)
        assert await wait_until_async(lambda: better.state is State.STANDBY)
        await asyncio.sleep(2.5)  # > 2 ttl: only heartbeats keep it
        assert lease.held and not waiting.done()
        assert lease_row(name) == ("held", lease.token, leader.holder, app, True)

        async with await psycopg.AsyncConnection.connect(dsn, prepare_threshold=None) as conn:
            async with conn.transaction():
                await lease.assert_held(conn)
            assert await leader.release() is True
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="not held"):
                async with conn.transaction():
                    await lease.assert_held(conn)

        taken = await asyncio.wait_for(waiting, WAIT)
        assert taken.token > lease.token and not lease.held
        assert lease_row(name)[:4] == ("held", taken.token, better.holder, app)
        assert await better.release() is True
        assert lease_row(name)[0] == "free"
        calls = shadow_calls(app)
        assert not calls, f"the attacker's functions ran as the service's role: {dict(calls)}"
    finally:
        for elector in electors:
            await elector.aclose()
        with admin() as conn:
            for role in (attacker, app):
                conn.execute(f"DROP OWNED BY {role}")
                conn.execute(f"DROP ROLE {role}")


async def test_the_extensions_schema_is_found_off_the_search_path():
    """A database whose extension lives in a schema that is not on the
    search_path, and whose name needs quoting: without schema= the elector
    finds it, and leads, renews and releases there."""
    name = unique("sp_off_path")
    with scratch_database("sp_schema", extension=False) as db:
        with psycopg.connect(tcp_dsn(dbname=db), autocommit=True) as conn:
            conn.execute('CREATE SCHEMA "Lock Ext"')
            conn.execute('CREATE EXTENSION singleton_lock SCHEMA "Lock Ext"')
            assert conn.execute("SELECT to_regproc('singleton_acquire')").fetchone() == (None,)
        async with singleton_lock.AsyncElector(name, ttl="1s", dsn=tcp_dsn(dbname=db)) as elector:
            lease = await asyncio.wait_for(elector.acquire(), WAIT)
            await asyncio.sleep(1.5)  # heartbeats: a failing call would have lost it
            assert lease.held
            async with await psycopg.AsyncConnection.connect(tcp_dsn(dbname=db)) as conn:
                async with conn.transaction():
                    await lease.assert_held(conn)
            assert await elector.release() is True
