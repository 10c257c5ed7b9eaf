"""Bots with pooled leases through the stack docs/high-availability.md
recommends in front of a Patroni cluster:

  bots -> PgBouncer (transaction pooling, server_login_retry 1 s)
       -> HAProxy (routes to the member whose Patroni REST API answers
          GET /primary with 200; sessions to a member marked down are cut)
       -> two PostgreSQL members run by Patroni, with etcd.

The bots' role has singleton_lock.bind_session = off: pooled leases, which end
by release or TTL alone. Two faults while two bots run: kill -9 of the
primary's postmaster (Patroni fails over), then `patronictl switchover` back.
After each: the bots' pooled connections reach the new primary, the ledger
there grows again (the replicated lease renewed by its holder, or a new holder
after its expiry), and no bot died. At the end the ledger on the last primary
shows one writer at a time and tokens that never go backwards; the bots'
"leader" lines never go backwards either, and no token is printed by two bots. The figure (new
primary accepts writes -> first fenced write through the stack) is printed,
never asserted."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from harness import (BOT, ROOT, check_ledger, create_app_role, ledger, ms, pgbouncer_ini, unique,
                     wait_until)

sys.path.insert(0, str(ROOT / "test/scenarios/failover"))
from patroni_cluster import PatroniCluster  # noqa: E402  (etcd + two Patroni members)
from pg import OWNER, Failure, port_open, stop_pidfile, stop_process  # noqa: E402
from probe import WriteProbe  # noqa: E402  (when a new primary first took a write)

# Below the kernel's ephemeral port range, apart from the other failover tests' ports.
PG_PORTS, API_PORTS, ETCD_PORTS = (25530, 25531), (25532, 25533), (25534, 25535)
HAPROXY_PORT, BOUNCER_PORT = 25536, 25537
ROLE = "regress_ha_pooled"
WAIT = 120.0  # a Patroni failover plus a TTL, on a noisy 2-core machine


def as_owner(args):
    return ["runuser", "-u", OWNER, "--"] + args if OWNER else args


def owned_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    if OWNER:
        shutil.chown(path, OWNER, OWNER)
    return path


def write_owned(path: Path, text: str) -> None:
    path.write_text(text)
    if OWNER:
        shutil.chown(path, OWNER, OWNER)


def haproxy_config(workdir: Path, members) -> str:
    servers = "\n".join(
        f"    server {m.name} 127.0.0.1:{m.port} check port {m.api_port}" for m in members)
    return f"""global
    pidfile {workdir}/haproxy.pid
    log stderr format short local0 info
defaults
    mode tcp
    log global
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s
listen postgres_primary
    bind 127.0.0.1:{HAPROXY_PORT}
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions
{servers}
"""


class Stack:
    """The cluster, HAProxy and PgBouncer, started in that order and stopped in
    the reverse one, each verified."""

    def __init__(self) -> None:
        self.workdir = owned_dir("sl_py_ha_pooled.")
        self.cluster = PatroniCluster(str(self.workdir), PG_PORTS, API_PORTS, ETCD_PORTS)
        self.haproxy = None

    def start(self) -> None:
        first, _ = self.cluster.start()
        with first.connect() as conn:  # (streamed to the replica like any catalog change)
            create_app_role(conn, ROLE, pooled=True)
        write_owned(self.workdir / "haproxy.cfg", haproxy_config(self.workdir, self.cluster.members))
        # (run in the work directory: as the postgres user, the caller's may be
        # unreadable, e.g. /root, and HAProxy refuses to start there)
        log = open(self.workdir / "haproxy.log", "a")
        self.haproxy = subprocess.Popen(
            as_owner(["haproxy", "-db", "-f", str(self.workdir / "haproxy.cfg")]),
            stdout=log, stderr=log, cwd=self.workdir)
        assert wait_until(lambda: port_open(HAPROXY_PORT) or self.haproxy.poll() is not None), \
            f"HAProxy did not listen:\n{self.logs()}"
        assert self.haproxy.poll() is None, f"HAProxy exited:\n{self.logs()}"
        write_owned(self.workdir / "users.txt", f'"{ROLE}" ""\n')
        write_owned(self.workdir / "pgbouncer.ini",  # server_login_retry as the docs advise
                    pgbouncer_ini(self.workdir, BOUNCER_PORT, HAPROXY_PORT, "server_login_retry = 1\n"))
        subprocess.run(as_owner(["pgbouncer", "-d", str(self.workdir / "pgbouncer.ini")]),
                       check=True, cwd=self.workdir)
        assert wait_until(lambda: self.served_by() == first.port, timeout=WAIT), \
            f"the stack never reached {first.name}:\n{self.logs()}"

    def dsn(self) -> str:
        return (f"host=127.0.0.1 port={BOUNCER_PORT} user={ROLE} dbname=postgres "
                "sslmode=disable")

    def served_by(self):
        """The port of the server a pooled connection reaches, if it is a
        writable primary; None otherwise (or when nothing answers)."""
        try:
            with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=3,
                                 prepare_threshold=None) as conn:
                port, recovering = conn.execute(
                    "SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
                return None if recovering else port
        except psycopg.Error:
            return None

    def logs(self) -> str:
        out = [self.cluster.list()]
        for name in ("haproxy.log", "pgbouncer.log"):
            path = self.workdir / name
            if path.exists():
                out.append(f"--- {name}\n" + "".join(path.read_text(errors="replace")
                                                      .splitlines(True)[-20:]))
        return "\n".join(out)

    def stop(self) -> None:
        errors = []
        stop_steps = [
            lambda: stop_pidfile(self.workdir / "pgbouncer.pid", "pgbouncer", BOUNCER_PORT),
            self._stop_haproxy, self.cluster.stop]
        for step in stop_steps:
            try:
                step()
            except Failure as e:
                errors.append(str(e))
        if errors:
            raise Failure("; ".join(errors))
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_haproxy(self) -> None:
        stop_process(self.haproxy, timeout=20)
        if port_open(HAPROXY_PORT):
            raise Failure("haproxy still listens after it was stopped")


@pytest.fixture
def stack():
    for tool in ("patroni", "patronictl", "etcd", "etcdctl", "haproxy", "pgbouncer"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (test/install_deps.sh installs it)")
    s = Stack()
    try:
        s.start()
        yield s
    finally:
        s.stop()


def rows_since(primary, table: str, since_ns: int) -> int:
    """Ledger rows written at or after since_ns (0 while the bots have not
    created the table yet, or the member does not answer)."""
    try:
        return primary.value(
            f'SELECT count(*) FROM "{table}" WHERE at >= to_timestamp(%s / 1e9)', (since_ns,)) or 0
    except psycopg.Error:
        return 0


def first_row_since(primary, table: str, since_ns: int) -> int:
    return primary.value(
        f'SELECT (extract(epoch FROM min(at)) * 1e9)::bigint FROM "{table}" '
        "WHERE at >= to_timestamp(%s / 1e9)", (since_ns,))


def app_sessions(member) -> int:
    """Sessions of the bots' role on member (PgBouncer's server connections)."""
    return member.value("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (ROLE,))


def only_primary_serves(stack: Stack, primary, what: str) -> None:
    """HAProxy's health check keeps PgBouncer's server connections on the
    primary: the other member (a streaming replica) has none of the bots'."""
    replica = stack.cluster.other(primary)
    assert app_sessions(primary) > 0, f"{what}: no session of the bots on {primary.name}"
    assert app_sessions(replica) == 0, \
        f"{what}: the bots have sessions on the replica {replica.name}:\n{stack.logs()}"


def survive(stack: Stack, bots, table: str, what: str, fault, new_primary) -> None:
    """Runs fault(); the bots must write through the stack to new_primary again."""
    probe = WriteProbe(new_primary.dsn()).start()
    detail = fault()
    accepted_ns = probe.wait(timeout=WAIT)
    assert accepted_ns is not None, f"{what}: {new_primary.name} never accepted a write"
    assert wait_until(lambda: stack.served_by() == new_primary.port, timeout=WAIT), \
        f"{what}: pooled connections never reached {new_primary.name}:\n{stack.logs()}"
    assert wait_until(lambda: rows_since(new_primary, table, accepted_ns) >= 5, timeout=WAIT), \
        f"{what}: no bot wrote through the stack to {new_primary.name}:\n{stack.logs()}"
    for bot in bots:
        assert bot.proc.poll() is None, f"{what}: bot {bot.label} exited:\n{bot.stderr()}"
    stack.cluster.wait_healthy(new_primary, timeout=WAIT)
    only_primary_serves(stack, new_primary, what)
    first_ns = first_row_since(new_primary, table, accepted_ns)
    print(f"\n[patroni+pgbouncer] {what} ({detail}): {new_primary.name} accepts writes -> "
          f"first fenced write through PgBouncer and HAProxy {ms((first_ns - accepted_ns) / 1e9)}")


def leader_lines(bot):
    """(arrival time, token, bot) of every "leader <token>" line the bot printed."""
    while bot.next_leader(timeout=0.01) is not None:
        pass
    return [(at, int(line.split()[1]), bot.label) for at, line in bot.seen]


def test_pooled_bots_through_pgbouncer_and_haproxy_survive_patroni_failovers(stack, spawn):
    pg1, pg2 = stack.cluster.members
    name, table = unique("ha_pooled"), unique("ledger")
    cmd = BOT + ["--dsn", stack.dsn(), "--name", name, "--ledger", table, "--ttl", "5s"]
    a = spawn(cmd, "a")
    got_a = a.next_leader(timeout=WAIT)
    assert got_a, f"no leader through the stack:\n{a.stderr()}"
    b = spawn(cmd, "b")
    assert b.wait_stderr("standby"), f"b never waited as a standby:\n{b.stderr()}"
    assert wait_until(lambda: rows_since(pg1, table, 0) >= 5), "the leader wrote nothing"
    only_primary_serves(stack, pg1, "before the faults")

    def crash():
        pid = pg1.kill_postmaster()
        return f"kill -9 of {pg1.name}'s postmaster {pid}, verified dead"

    survive(stack, (a, b), table, "Patroni failover after a crash", crash, pg2)
    survive(stack, (a, b), table, "patronictl switchover",
            lambda: stack.cluster.switchover(pg2, pg1), pg1)

    for bot in (a, b):
        bot.signal(signal.SIGTERM)
    for bot in (a, b):
        assert bot.wait_exit() == 0, f"bot {bot.label} did not stop cleanly:\n{bot.stderr()}"
    runs = check_ledger(ledger(table, pg1.dsn()))
    printed = sorted(seen for bot in (a, b) for seen in leader_lines(bot))
    tokens = [token for _, token, _ in printed]
    assert tokens == sorted(tokens), f"leader lines' tokens went backwards: {printed}"
    # A token printed twice is one tenure led again by its own holder (after a
    # lost connection, its acquire found the lease still its own): never two bots.
    for token in set(tokens):
        bots = {label for _, t, label in printed if t == token}
        assert len(bots) == 1, f"token {token} printed by bots {bots}: {printed}"
    written = {token for token, _, _ in runs}
    assert written <= set(tokens), f"ledger tokens {written} not announced as {tokens}"
    print(f"[patroni+pgbouncer] tenures on {pg1.name}'s ledger (token, pid, rows): {runs}")
