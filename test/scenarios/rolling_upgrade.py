#!/usr/bin/env python3
"""A rolling upgrade with priorities (test/scenarios/rolling_upgrade.sh), three
instances of two versions, each `singleton-lock run --priority P -- ledger_worker`:

  1. v1-a (priority 1) leads, v1-b (priority 1) waits;
  2. v2 (priority 2, "the newer build") starts: v1-a is asked to step down, its
     COMMAND stops, its release hands the lease to v2 in one commit; v1-a waits
     as a standby again;
  3. while v2 lives neither v1 instance leads again (equal priorities among
     themselves, lower than v2's: they never preempt);
  4. v2 stops (SIGTERM): one of the v1 instances takes over.

Checked: the order of tenures (v1-a, v2, a v1), every COMMAND started only after
the previous leader's COMMAND had stopped (the workers' own start/stop events),
and the fencing checker of the failover scenarios over the ledger's commit
order (failover/ledger.py): no overlapping tenures, tokens only grow, no stale
write let through. Printed, never asserted: v2 ready (waiting) -> v2's COMMAND
runs, with the breakdown from the wrappers' logs.

Runs against the server of the PG* environment, in a database of its own.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "failover"))

import psycopg  # noqa: E402
from ledger import SCHEMA_SQL, build_worker, check, read_ledger  # noqa: E402
from pg import Failure, pid_alive, wait_for  # noqa: E402

CLI = os.environ.get("SL_CLI", os.path.join(ROOT, "build", "client", "client", "singleton-lock"))
LEASE = "rolling-upgrade"
DB = "sl_rolling_upgrade"


def log(msg):
    print(msg, flush=True)


class Instance:
    def __init__(self, label, priority, work, worker, dsn):
        self.label, self.priority = label, priority
        self.log = os.path.join(work, f"{label}.log")
        self.events = os.path.join(work, "events")
        self.proc = subprocess.Popen(
            [CLI, "run", "--name", LEASE, "--ttl", "5s", "--priority", str(priority),
             "--dsn", f"{dsn} application_name=sl-{label}", "--",
             worker, dsn, label, self.events, os.path.join(work, "journal")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))

    def lines(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def logged(self, text):
        return any(text in line for line in self.lines())

    def count(self, text):
        return sum(text in line for line in self.lines())

    def log_ns(self, text, nth=1):
        """Realtime ns of the nth log line containing text (1 ms resolution)."""
        for line in self.lines():
            if text in line:
                nth -= 1
                if nth == 0:
                    ts = datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
                    return int(ts.replace(tzinfo=timezone.utc).timestamp() * 1e9)
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def events(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                kind, inst, pid, ns, tok = line.split()
                out.append((kind, inst, int(pid), int(ns), int(tok)))
    return out


def waiting(conn, label):
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND "
                        "wait_event_type = 'Extension' AND query LIKE '%%singleton_acquire%%'",
                        (f"sl-{label}",)).fetchone()[0] > 0


def leaders_in_order(evs):
    """Instances whose COMMAND started, in order; fails if one started while another ran."""
    running, order = {}, []
    for kind, inst, pid, ns, tok in evs:
        if kind == "start":
            alive = [i for p, i in running.items() if p != pid]
            if alive:
                raise Failure(f"{inst}'s COMMAND started while {alive} still ran: two leaders")
            running[pid] = inst
            order.append((inst, tok, ns))
        else:
            running.pop(pid, None)
    return order


def writes_of(conn, token):
    return conn.execute("SELECT count(*) FROM ha_ledger WHERE token = %s AND lease_ok AND fence_ok",
                        (token,)).fetchone()[0]


def main():
    work = tempfile.mkdtemp(prefix="sl_rolling_upgrade.")
    os.chmod(work, 0o755)
    admin = psycopg.connect("", autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {DB}")
    admin.execute(f"CREATE DATABASE {DB}")
    dsn = f"dbname={DB}"
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("CREATE EXTENSION singleton_lock")
    conn.execute(SCHEMA_SQL)
    worker = build_worker(work)
    instances = []
    try:
        checks = run(work, worker, dsn, conn, instances)
    finally:
        for inst in instances:
            if inst.proc.poll() is None:
                inst.proc.kill()
                inst.proc.wait()
        conn.close()
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if os.environ.get("SL_KEEP"):
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log(f"{checks} passed, 0 failed")


def run(work, worker, dsn, conn, instances):
    checks = 0

    def ok(msg):
        nonlocal checks
        checks += 1
        log(f"ok: {msg}")

    evpath = os.path.join(work, "events")
    started = lambda label: [e for e in events(evpath) if e[0] == "start" and e[1] == label]
    a = Instance("v1-a", 1, work, worker, dsn)
    instances.append(a)
    wait_for("v1-a to lead", lambda: started("v1-a"), 30)
    b = Instance("v1-b", 1, work, worker, dsn)
    instances.append(b)
    wait_for("v1-b to wait", lambda: waiting(conn, "v1-b"), 30)
    token_a = started("v1-a")[0][4]
    wait_for("v1-a's fenced writes", lambda: writes_of(conn, token_a) >= 5, 30)
    ok("v1-a leads and writes, v1-b waits as a standby")

    v2 = Instance("v2", 2, work, worker, dsn)
    instances.append(v2)
    wait_for("v2 to lead", lambda: started("v2"), 30)
    token_v2 = started("v2")[0][4]
    if token_v2 <= token_a:
        raise Failure(f"v2's token {token_v2} is not above v1-a's {token_a}")
    wait_for("v1-a to step down", lambda: a.logged("stepped down; waiting as a standby again"), 30)
    if a.proc.poll() is not None:
        raise Failure(f"v1-a exited ({a.proc.returncode}) instead of waiting again")
    ok("v2 (priority 2) made v1-a step down and leads; v1-a waits again")
    report_latency(a, v2)

    wait_for("v2's fenced writes", lambda: writes_of(conn, token_v2) >= 50, 30)  # ~1 s of writes
    wait_for("v1-a to wait again", lambda: waiting(conn, "v1-a"), 30)
    time.sleep(0.5)
    if started("v1-b") or len(started("v1-a")) != 1 or v2.proc.poll() is not None:
        raise Failure("a v1 instance led again while v2 lives")
    if v2.logged("asks for the lease"):
        raise Failure("a v1 instance (lower priority) asked v2 to step down")
    ok("while v2 lives no v1 instance leads again, nor asks it to step down")

    rc = v2.stop()
    if rc != 0:
        raise Failure(f"v2 exited {rc} after SIGTERM, expected 0")
    next_v1 = wait_for("a v1 instance to take over",
                       lambda: (started("v1-b") or started("v1-a")[1:] or [None])[0], 30)
    wait_for("the new v1 leader's writes", lambda: writes_of(conn, next_v1[4]) >= 5, 30)
    ok(f"after v2 stopped, {next_v1[1]} took over (token {next_v1[4]})")

    for inst in (a, b):
        inst.stop()
    order = leaders_in_order(events(evpath))
    labels = [o[0] for o in order]
    if labels[:2] != ["v1-a", "v2"] or len(labels) != 3 or not labels[2].startswith("v1"):
        raise Failure(f"tenures in order {labels}, expected v1-a, v2, then a v1 instance")
    ok(f"COMMANDs never overlapped; tenures in order: {', '.join(labels)}")
    with psycopg.connect(dsn) as c:
        verdict = check(read_ledger(c))
    log(f"ledger: {verdict.summary()}")
    if verdict.problems():
        raise Failure("fencing checker: " + ", ".join(verdict.problems()))
    if len(verdict.tenures) != 3:
        raise Failure(f"{len(verdict.tenures)} tenures in the ledger, expected 3")
    ok("fenced ledger: 3 tenures, no overlap, tokens only grow, no stale write let through")
    return checks


def report_latency(a, v2):
    """Printed only: where the preemption's time went, from the wrappers' logs."""
    ready = v2.log_ns("standby, held by")        # v2's first reply: it is about to wait
    asked = a.log_ns("asks for the lease")
    stopped = a.log_ns("COMMAND exited") or a.log_ns("COMMAND was killed")
    released = a.log_ns('": released')
    leader = v2.log_ns("leader, token")
    started_ = v2.log_ns("started COMMAND")
    if None in (ready, asked, stopped, released, leader, started_):
        log("preemption: (log lines missing, no breakdown)")
        return
    ms = lambda x, y: (y - x) / 1e6
    log(f"preemption (wrapper logs, 1 ms resolution): v2 ready -> v1-a asked {ms(ready, asked):.0f} ms"
        f", -> v1-a's COMMAND exited {ms(asked, stopped):.0f} ms, -> released (handoff) "
        f"{ms(stopped, released):.0f} ms, v2 leader {ms(released, leader):+.0f} ms, v2's COMMAND "
        f"{ms(leader, started_):.0f} ms later; in all {ms(ready, started_):.0f} ms")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        print("0 passed, 1 failed")
        sys.exit(1)
