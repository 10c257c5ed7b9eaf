"""examples/node/worker.js against the real server: the same scenarios as the
Python bot's (shared in test/python/scenarios.py)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from decimal import Decimal
from typing import Any, Callable

import pytest
from psycopg import sql

from harness import (DEFERRABLE_DEFAULTS, ROOT, WAIT, WORKER, admin, create_app_role, fenced_work,
                     lease_state, plant_acquire_trap, scratch_database, serializable_batch,
                     tcp_dsn, unique, wait_until)
from scenarios import (database_restart, strict_server_settings, three_copies_kill_and_term,
                       two_copies_handover)

pytestmark = pytest.mark.usefixtures("extension")


def test_two_copies_sigterm_hands_over(spawn):
    two_copies_handover(spawn, WORKER, "node")


def test_three_copies_one_writer_sigkill_and_sigterm(spawn):
    three_copies_kill_and_term(spawn, WORKER, "node")


def test_strict_server_settings_keep_the_leader(spawn):
    strict_server_settings(spawn, WORKER, "node")


def test_database_restart_is_survived(spawn):
    database_restart(spawn, WORKER, "node")


# Leads once (ttl 8 s), prints "leader TOKEN", releases when told (a line on
# stdin; "after-loss": once the lease is lost, printing "lost REASON"), prints
# "released true|false".
ELECTOR_ONCE = """
const [lib, name, dsn] = process.argv.slice(1)
const { Elector } = require(lib + '/elector.js')
const { clientOptions } = require(lib + '/config.js')
const elector = new Elector({ name, clientOptions: clientOptions(dsn, 5000), ttl: 8000,
  log: (line) => console.error(line) })
elector.acquire().then((lease) => {
  console.log(`leader ${lease.token}`)
  process.stdin.once('data', async (line) => {
    if (String(line).startsWith('after-loss')) console.log(`lost ${await lease.lost}`)
    console.log(`released ${await elector.release()}`)
    process.exit(0)
  })
})
"""


def lead_once(options: str, before_release: Callable[[str, str], Any] = lambda name, token: None,
              when: str = "release") -> str:
    """ELECTOR_ONCE under the connection's `options` (which work as a role's or
    database's defaults would); before_release(name, token) runs while it leads;
    `when` is the line it is then sent. Asserts that the lease was released.
    Its stderr."""
    name = unique("node_once")
    elector = subprocess.Popen(
        ["node", "-e", ELECTOR_ONCE, str(ROOT / "examples/node/lib"), name,
         tcp_dsn(options=f"'{options}'")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([elector.stdout], [], [], 20)
        assert ready, "the elector never led"
        leader = elector.stdout.readline().split()
        assert leader[:1] == ["leader"], leader
        before_release(name, leader[1])
        out, err = elector.communicate(when + "\n", timeout=WAIT)
    finally:
        elector.kill()
        elector.wait()
    assert elector.returncode == 0 and out.splitlines()[-1:] == ["released true"], (out, err)
    return err


def test_the_elector_sets_its_own_session_defaults():
    """The worker's elector in sessions that default to read-only transactions
    (a role's or database's default_transaction_read_only): it still leads and
    releases, since its first statement makes read-write its session's
    default. Before: every acquire was refused (25006) and it never led."""
    assert "read-only" not in lead_once("-c default_transaction_read_only=on")


def test_a_deferrable_default_delays_no_connect():
    """A reporting role's defaults (SERIALIZABLE, READ ONLY, DEFERRABLE) while
    a serializable read-write transaction runs: every statement that takes a
    snapshot waits for a safe one until it ends, so the elector's first
    statement is a SET of its own defaults, which takes none. Before: its
    connect statement waited ("no reply from the server") and it never led."""
    with serializable_batch():
        assert "no reply" not in lead_once(DEFERRABLE_DEFAULTS)


def test_a_lock_timeout_default_fails_no_release():
    """Under a lock_timeout default the release waits for the lease's row
    until the leader's asserting transaction ends (fenced work ends before the
    lease moves). Before: "release failed: canceling statement due to lock
    timeout", and the lease stayed held until it expired."""
    working = []  # (still running at the release)
    err = lead_once("-c lock_timeout=100ms",
                    lambda name, token: working.append(fenced_work(name, token, 1)))
    assert "lock timeout" not in err
    assert working[0].result(WAIT) == "held"


def test_a_release_after_a_loss_sets_its_new_session_up_too():
    """A lease lost without the server's word (its holder's backend hangs:
    SIGSTOP) may still be ours on the server: release() frees it with its
    token over a new connection, which runs the connect statement first. Before:
    under a read-only default that release was refused until it gave up."""
    stopped = []

    def hang(name: str, token: str) -> None:
        pid = lease_state(name)[1]
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    try:
        err = lead_once("-c default_transaction_read_only=on", hang, "after-loss")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert "LOST (deadline" in err and "released after the loss" in err, err


# The attacker's twins of every function the worker calls: (name, arguments,
# result, what it returns). Each first records its call (and as whom it runs).
SHADOWS = [
    ("singleton_acquire", "text, interval, text, interval, OUT acquired boolean, OUT token bigint, "
     "OUT holder text, OUT expires_at timestamptz", "record",
     "SELECT true, 1::bigint, 'shadow'::text, pg_catalog.now() + interval '1 hour'"),
    ("singleton_heartbeat", "text, bigint, interval", "timestamptz",
     "SELECT pg_catalog.now() + interval '1 hour'"),
    ("singleton_release", "text, bigint", "boolean", "SELECT true"),
    ("singleton_assert", "text, bigint", "void", ""),
]
# ...and operators that need no cast where pg_catalog's do: these beat
# pg_catalog's although it is searched first. (operator, its function's name,
# result, what it returns)
OPERATOR_SHADOWS = [
    ("=", "op_eq", "boolean", "SELECT $1 OPERATOR(pg_catalog.=) $2::numeric"),
    ("*", "op_mul", "numeric", "SELECT $1 OPERATOR(pg_catalog.*) $2::numeric"),
]


def test_no_function_is_taken_from_the_search_path(spawn):
    """A role with CREATE on the database creates a schema named after the
    worker's role ("$user", first in the default search_path, before the
    extension's public) with twins of the functions the worker calls: the
    worker names the extension's schema in every call, so none of them runs,
    and it leads, renews and releases the real lease. Before: the calls ran
    the attacker's functions as the worker's role (and no lease was taken)."""
    app, attacker = unique("node_app"), unique("node_attacker")
    name, table = unique("node_sp"), unique("node_sp_ledger")
    worker = None
    with admin() as conn:
        try:
            create_app_role(conn, app, pooled=False)
            conn.execute(f"CREATE ROLE {attacker}")
            conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(attacker)))
            with admin() as evil:
                evil.execute(f"SET ROLE {attacker}")
                evil.execute(f"CREATE SCHEMA {app}")
                evil.execute(f"GRANT USAGE ON SCHEMA {app} TO PUBLIC")
                evil.execute(f"CREATE TABLE {app}.calls (fn text, caller text DEFAULT current_user)")
                evil.execute(f"GRANT INSERT ON {app}.calls TO PUBLIC")
                for fn, args, result, body in SHADOWS:
                    evil.execute(f"CREATE FUNCTION {app}.{fn}({args}) RETURNS {result} LANGUAGE sql "
                                 f"AS $$ INSERT INTO {app}.calls (fn) VALUES ('{fn}'); {body} $$")
                for op, fn, result, body in OPERATOR_SHADOWS:
                    evil.execute(f"CREATE FUNCTION {app}.{fn}(numeric, integer) RETURNS {result} "
                                 f"LANGUAGE sql AS $$ INSERT INTO {app}.calls (fn) "
                                 f"VALUES ('operator {op}'); {body} $$")
                    evil.execute(f"CREATE OPERATOR {app}.{op} (leftarg = numeric, "
                                 f"rightarg = integer, function = {app}.{fn})")
            # (the scenario works: as the worker's role, the twins come first)
            conn.execute(f"SET ROLE {app}")
            first = conn.execute("SELECT 'singleton_acquire(text, interval, text, interval)'"
                                 "::regprocedure::oid = p.oid FROM pg_catalog.pg_proc p "
                                 "WHERE p.pronamespace = %s::regnamespace AND "
                                 "p.proname = 'singleton_acquire'", (app,)).fetchone()
            operator = conn.execute("SELECT nullif(1.5, 0)").fetchone()
            conn.execute("RESET ROLE")
            calls = conn.execute(f"SELECT fn FROM {app}.calls").fetchall()
            conn.execute(f"TRUNCATE {app}.calls")
            assert first == (True,)
            assert operator == (Decimal("1.5"),) and calls == [("operator =",)], calls

            def lease():
                row = conn.execute("SELECT state, token, renewed_at > acquired_at, last_transition "
                                   "FROM singleton_leases WHERE name = %s", (name,)).fetchone()
                return tuple(row) if row else (None,) * 4

            def shadow_calls():
                return conn.execute(f"SELECT fn, caller FROM {app}.calls").fetchall()

            worker = spawn(WORKER + ["--dsn", tcp_dsn(user=app), "--name", name,
                                     "--ledger", f"public.{table}", "--ttl", "2s"], "worker")
            leader = worker.next_leader()
            assert leader, "the worker never led"
            token = leader[1]
            wait_until(lambda: lease()[:3] == ("held", token, True) or shadow_calls())
            renewed = lease()
            worker.signal(signal.SIGTERM)
            assert worker.wait_exit() == 0
            assert shadow_calls() == [], f"the worker ran the attacker's functions: {shadow_calls()}"
            assert renewed[:3] == ("held", token, True), renewed  # (it led, with a heartbeat)
            assert lease()[0] == "free" and lease()[3] == "released", lease()
        finally:
            if worker:
                worker.stop()
            conn.execute("RESET ROLE")
            for role in (attacker, app):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f"DROP OWNED BY {role}")
                    conn.execute(f"DROP ROLE {role}")


def test_a_database_without_the_extension_is_fatal_and_says_so():
    """No extension in the database: no schema to name, so the worker calls
    nothing by name (someone else's singleton_acquire could be found: here
    one in public that records its calls) and exits 1 saying what to do."""
    with scratch_database("node_noext", extension=False) as database:
        trapped = plant_acquire_trap(database)
        result = subprocess.run(WORKER + ["--dsn", tcp_dsn(dbname=database), "--name", "x",
                                          "--ledger", "public.t"],
                                capture_output=True, text=True, timeout=WAIT)
        assert result.returncode == 1, result.stderr
        assert ("the extension singleton_lock is not installed in this database "
                "(CREATE EXTENSION singleton_lock)") in result.stderr, result.stderr
        assert trapped() == 0


def test_bad_input_gets_clear_errors():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(WORKER + list(args), capture_output=True, text=True, timeout=WAIT)

    cases = [
        (("--name", "x", "--ledger", "t"), "--dsn is required"),
        (("--dsn", tcp_dsn(), "--name", "x", "--ledger", "t", "--ttl", "10"), "invalid duration '10'"),
        (("--dsn", tcp_dsn(), "--name", "n" * 256, "--ledger", "t"), "1 to 255 characters"),
        (("--dsn", tcp_dsn(), "--name", "x", "--ledger", "a..b"), "invalid table name"),
        (("--dsn", "host=x bogus", "--name", "x", "--ledger", "t"), "invalid dsn"),
        (("--dsn", tcp_dsn(), "--name", "x", "--ledger", "t", "--what"), "unknown argument"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
