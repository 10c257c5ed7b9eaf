"""Two bots through a real PgBouncer in transaction pooling mode, for a role
with singleton_lock.bind_session = off: leases then end by TTL (or release)
alone, the elector does not LISTEN (it reads the role's setting), and no
server-side prepared statement is used (psycopg's prepare_threshold=None)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import singleton_lock
from harness import (BOT, ROOT, LogLines, admin, check_ledger, create_app_role, ledger, lease_state,
                     ms, pgbouncer_ini, tcp_dsn, unique, wait_rows, wait_until)
from scenarios import command

sys.path.insert(0, str(ROOT / "test/scenarios/failover"))
from pg import stop_pidfile  # noqa: E402  (verified gone, its port closed)

pytestmark = pytest.mark.usefixtures("extension")

ROLE = "regress_py_pooled"
PORT = int(os.environ.get("SL_PY_BOUNCER_PORT", "64331"))
SUPERUSER = os.environ.get("PGUSER", "postgres")


def as_server_owner(args):
    return ["runuser", "-u", "postgres", "--"] + args if os.geteuid() == 0 else args


@pytest.fixture
def bouncer():
    # Not pytest's tmp_path: its parents are private to root, and pgbouncer
    # runs as the server's user.
    tmp_path = Path(tempfile.mkdtemp(prefix="sl_py_bouncer."))
    if shutil.which("pgbouncer") is None:
        pytest.fail("pgbouncer is not installed (test/install_deps.sh installs it)")
    with admin() as conn:
        conn.execute("SET client_min_messages = warning")
        if _role_exists(conn):
            conn.execute(f"DROP OWNED BY {ROLE}")
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        create_app_role(conn, ROLE, pooled=True)
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text(pgbouncer_ini(tmp_path, PORT, int(os.environ["PGPORT"])))
    # (the superuser too: a role whose leases are session-bound)
    (tmp_path / "users.txt").write_text(f'"{ROLE}" ""\n"{SUPERUSER}" ""\n')
    if os.geteuid() == 0:
        shutil.chown(tmp_path, "postgres")
        for f in tmp_path.iterdir():
            shutil.chown(f, "postgres")
    subprocess.run(as_server_owner(["pgbouncer", "-d", str(ini)]), check=True)
    try:
        assert wait_until(lambda: _answers(tcp_dsn(port=PORT, user=ROLE))), "pgbouncer did not start"
        yield tcp_dsn(port=PORT, user=ROLE)
    finally:
        stop_pidfile(tmp_path / "pgbouncer.pid", "pgbouncer", PORT)
        with admin() as conn:
            conn.execute(f"DROP OWNED BY {ROLE}")
            conn.execute(f"DROP ROLE {ROLE}")
        shutil.rmtree(tmp_path, ignore_errors=True)


def _role_exists(conn) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is not None


def _answers(dsn: str) -> bool:
    import psycopg
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def test_bots_through_pgbouncer_transaction_pooling(spawn, bouncer):
    name, table = unique("pooled"), unique("ledger")
    cmd = command(BOT, name, table, "3s", bouncer)
    a = spawn(cmd, "a")
    got_a = a.next_leader()
    assert got_a, "no leader through the pooler"
    state = lease_state(name)
    assert state == ("held", None), f"the pooled lease must not be session-bound: {state}"
    b = spawn(cmd, "b")
    assert b.wait_stderr("standby")
    assert wait_rows(table, got_a[1], 5)
    assert b.lines.empty()

    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    got_b = b.next_leader()
    assert got_b, "no handover through the pooler after SIGTERM"
    print(f"\n[pgbouncer] handover after SIGTERM (release wakes the waiting standby): "
          f"{ms(got_b[0] - t0)}")
    assert a.wait_exit() == 0
    assert wait_rows(table, got_b[1], 5)

    c = spawn(cmd, "c")
    assert c.wait_stderr("standby")
    t0 = time.monotonic()
    b.signal(signal.SIGKILL)  # no session binding behind the pooler: the TTL frees it
    got_c = c.next_leader()
    assert got_c, "no takeover through the pooler after SIGKILL"
    print(f"[pgbouncer] takeover after SIGKILL (TTL alone, ttl 3s): {ms(got_c[0] - t0)}")
    assert wait_rows(table, got_c[1], 5)
    c.signal(signal.SIGTERM)
    assert c.wait_exit() == 0
    runs = check_ledger(ledger(table))
    assert [r[0] for r in runs] == [got_a[1], got_b[1], got_c[1]]


async def test_statements_queued_behind_a_watch_through_pgbouncer(monkeypatch, bouncer):
    """Through the pooler (transaction pooling: each statement of the
    pipeline is a transaction of its own, PgBouncer counts their Syncs): the
    heartbeats queued behind watches asked to last 10 minutes past them, and
    the release queued behind the last, end those watches; no cancel request."""
    import asyncio

    import singleton_lock
    import singleton_lock.keeper
    import singleton_lock.link
    from singleton_lock.link import Link

    from harness import WAIT, wait_until, watch_in_flight

    sent = []
    interrupt = Link.interrupt
    monkeypatch.setattr(Link, "interrupt", lambda link: sent.append(1) or interrupt(link))
    monkeypatch.setattr(singleton_lock.keeper, "WATCH_PAST_HEARTBEAT", 600.0, raising=False)
    monkeypatch.setattr(singleton_lock.link, "YIELD_WITHIN", 10 * WAIT, raising=False)
    name = unique("pooled_q")
    leader = singleton_lock.AsyncElector(name, ttl="3s", dsn=bouncer)
    lease = await leader.acquire()
    await asyncio.sleep(5)  # five heartbeats, each queued behind a watch
    assert lease.held and lease_state(name) == ("held", None)
    assert await asyncio.get_running_loop().run_in_executor(
        None, lambda: wait_until(lambda: watch_in_flight(user=ROLE), WAIT)), "no watch in flight"
    t0 = time.monotonic()
    assert await asyncio.wait_for(leader.release(), WAIT) is True
    print(f"\n[pgbouncer] release queued behind a watch: {ms(time.monotonic() - t0)}")
    assert sent == [] and lease_state(name)[0] == "free"
    await leader.aclose()


async def test_a_session_bound_role_through_pgbouncer_is_warned(bouncer):
    """Through the pooler, a role whose leases are bound to sessions (the
    superuser here: bind_session on) gets the warning that the pooler, not
    this process, decides when those sessions end; the pooled role
    (bind_session off) and a direct connection do not."""
    cases = [("bound role through the pooler", tcp_dsn(port=PORT, user=SUPERUSER), 1),
             ("pooled role through the pooler", bouncer, 0),
             ("direct connection", tcp_dsn(), 0)]
    for label, dsn, expected in cases:
        with LogLines(r"goes through a connection pooler or proxy") as warned:
            async with singleton_lock.AsyncElector(unique("pool_warn"), dsn=dsn, ttl="5s") as e:
                lease = await e.acquire()
                assert lease.held
        assert len(warned.lines) == expected, f"{label}: {warned.lines}"
