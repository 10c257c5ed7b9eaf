"""Two bots with a multi-host DSN over a real primary and streaming standby:
the primary crashes, only the standby answers (read-only) for 6 s, then it is
promoted. The bots reconnect as the C++ client does (at once after losing a
working connection, then within 500 ms while a failover looks under way), so
one of them leads on the new primary soon after it accepts writes (the figure
is printed, never asserted); nobody leads while there is no primary; tokens
grow; the ledger on the new primary shows one writer at a time."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time

import pytest

from harness import BOT, ROOT, check_ledger, first_leader, ledger, unique, wait_rows, wait_until

sys.path.insert(0, str(ROOT / "test/scenarios/failover"))
from pg import USER, Server  # noqa: E402  (the failover scenarios' throwaway servers)
from probe import WriteProbe  # noqa: E402  (when the promoted standby first took a write)

# Below the kernel's ephemeral port range, apart from the failover scenarios' ports.
PRIMARY_PORT, STANDBY_PORT = 25490, 25491
NO_PRIMARY_SECONDS = 6.0


@pytest.fixture
def cluster():
    workdir = tempfile.mkdtemp(prefix="sl_py_failover.")
    os.chmod(workdir, 0o755)  # the servers run as the postgres user
    primary = Server("primary", PRIMARY_PORT, workdir)
    standby = Server("standby", STANDBY_PORT, workdir)
    try:
        primary.initdb()
        primary.start()
        with primary.connect() as conn:
            conn.execute("CREATE EXTENSION singleton_lock")
            conn.execute("CREATE TABLE ha_probe (at timestamptz NOT NULL DEFAULT clock_timestamp())")
        standby.basebackup_from(primary)
        standby.start()
        yield primary, standby
    finally:
        for server in (primary, standby):
            server.stop("immediate")
        shutil.rmtree(workdir, ignore_errors=True)


def test_bots_follow_a_failover_to_the_promoted_standby(spawn, cluster):
    primary, standby = cluster
    dsn = (f"host=127.0.0.1,127.0.0.1 port={primary.port},{standby.port} user={USER} "
           "dbname=postgres sslmode=disable target_session_attrs=read-write")
    name, table = unique("failover"), unique("ledger")
    cmd = BOT + ["--dsn", dsn, "--name", name, "--ledger", table, "--ttl", "5s"]
    a = spawn(cmd, "a")
    got_a = a.next_leader()
    assert got_a, "no leader on the primary"
    b = spawn(cmd, "b")
    assert b.wait_stderr("standby")
    assert wait_rows(table, got_a[1], 5, dsn=primary.dsn())
    assert wait_until(lambda: standby.value(f'SELECT count(*) FROM "{table}"') or 0)

    primary.crash()
    assert a.wait_stderr("LOST"), "the leader did not notice that the primary crashed"
    time.sleep(NO_PRIMARY_SECONDS)  # only the standby answers (read-only)
    assert a.lines.empty() and b.lines.empty(), "someone led without a primary"
    assert a.proc.poll() is None and b.proc.poll() is None, "a bot exited without a primary"
    assert a.wait_stderr("read-only") or b.wait_stderr("read-only"), \
        "the standby was never reached (target_session_attrs=read-write)"

    probe = WriteProbe(standby.dsn()).start()
    standby.promote()
    writable_ns = probe.wait(60)
    assert writable_ns, "the promoted standby took no write"
    new = first_leader([a, b])
    assert new, "nobody led on the promoted standby"
    assert new[2] > got_a[1], "the token did not grow across the failover"
    assert wait_rows(table, new[2], 5, dsn=standby.dsn())
    tenure_ns, first_write_ns = standby.query(
        "SELECT (extract(epoch FROM acquired_at) * 1e9)::bigint, "
        f'(SELECT (extract(epoch FROM min(at)) * 1e9)::bigint FROM "{table}" WHERE token = %s) '
        "FROM singleton_leases WHERE name = %s", (new[2], name))[0]
    print(f"\n[python] failover ({NO_PRIMARY_SECONDS:.0f} s without a primary): new primary "
          f"accepts writes -> new tenure {(tenure_ns - writable_ns) / 1e6:.1f} ms, -> its first "
          f"fenced write {(first_write_ns - writable_ns) / 1e6:.1f} ms (server clock)")
    other = b if new[0] is a else a
    assert other.lines.empty(), "two bots led on the new primary"
    for instance in (other, new[0]):  # the standby first
        instance.signal(signal.SIGTERM)
        assert instance.wait_exit() == 0
    runs = check_ledger(ledger(table, dsn=standby.dsn()))
    assert [r[0] for r in runs] == [got_a[1], new[2]]
    print(f"[python] ledger runs on the new primary (token, pid, rows): {runs}")
