#!/usr/bin/env python3
"""Failover benchmark (make bench-failover; test/bench/failover.sh): primary crash
-> new primary accepts writes -> the new leader's COMMAND runs, over several
rounds, with real `singleton-lock run` instances (three, ttl 5 s) and the same
machinery, checks and fencing checker as test/scenarios/failover_*.sh.

  failover.py OUT.md

Kinds of rounds (BENCH_FO_ROUNDS each, default 8):
  plain     pg_ctl stop -m immediate of the primary, then pg_ctl promote of the
            streaming standby after a random 0..3 s (a failover manager's
            detection time; it puts the promotion at a random phase of the
            instances' reconnect backoff); the old primary is rebuilt as the
            new standby (pg_basebackup) before the next round;
  patroni   kill -9 of the primary's postmaster; Patroni fails over
            (primary_start_timeout 0) and rejoins the old primary;
  switchover  patronictl switchover;
  sync_cost   what a synchronous standby adds to each acquire / heartbeat (pgbench).
"new primary accepts writes" is the server's clock_timestamp() of the first
write a probe (one INSERT every 2 ms) got committed on it; COMMAND start is
the worker's CLOCK_REALTIME at exec; the first fenced write is the ledger row's
clock_timestamp() (all one machine, one clock).
"""
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "scenarios", "failover"))

from patroni import HEALTH_BASE, PatroniScenario  # noqa: E402
from pg import USER, Failure, wait_for  # noqa: E402
from probe import WriteProbe  # noqa: E402
from streaming import Streaming  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_FO_ROUNDS", "8"))
KINDS = os.environ.get("BENCH_FO_KINDS", "plain patroni switchover sync_cost").split()
MAX_GAP_S = 3.0
STEPS = [("fault -> new primary accepts writes", "fault -> new primary accepts writes"),
         ("new primary accepts writes -> new leader's COMMAND starts",
          "accepts writes -> new COMMAND starts"),
         ("new primary accepts writes -> first fenced write of the new tenure",
          "accepts writes -> first fenced write"),
         ("fault -> new leader's COMMAND starts", "fault -> new COMMAND starts"),
         ("old leader's COMMAND stopped after", "fault -> old COMMAND stopped")]


def log(msg):
    print(f"[failover {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def plain_round(run, label):
    """Crash the primary, promote the standby after a random gap, rebuild."""
    leader = run.current_leader()
    before = run.tokens_seen()
    gap = random.uniform(0, MAX_GAP_S)
    crash_ns = time.time_ns()
    run.primary.crash()
    run.old_leader_stops(leader, crash_ns, label)
    time.sleep(max(0.0, crash_ns / 1e9 + gap - time.time()))
    probe = WriteProbe(run.standby.dsn()).start()
    run.standby.promote()
    accepted_ns = probe.wait(timeout=60)
    if accepted_ns is None:
        raise Failure("the promoted standby never accepted a write")
    new = run.wait_new_leader(before, timeout=60)
    with run.standby.connect() as c:
        run.new_leader_figures(new, accepted_ns, crash_ns, label, c)
    run.tokens_grow(before, {new[2]}, label)
    # the old primary comes back as the new standby
    run.primary, run.standby = run.standby, run.primary
    run.standby.basebackup_from(run.primary)
    run.standby.start()
    wait_for("the rebuilt standby to stream", lambda: run.primary.value(
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1)


def bench_plain(rounds):
    run = Streaming("async")
    try:
        run.setup_cluster()
        run.start_instances(run.dsn, "5s", 3, run.health_base)
        for i in range(rounds):
            log(f"plain promotion, round {i + 1}/{rounds}")
            plain_round(run, "plain")
        run.platform.stop()
        run.fencing_checks(run.primary)
        return run.figures
    finally:
        run.cleanup()


def bench_patroni(kinds, rounds):
    run = PatroniScenario()
    figures = []
    try:
        run.setup()
        run.start_instances(run.cluster.dsn(), "5s", 3, HEALTH_BASE)
        for i in range(rounds):
            for kind in kinds:
                primary = run.cluster.primary()
                if primary is None:
                    raise Failure("no single Patroni primary between rounds")
                other = run.cluster.other(primary)
                log(f"{kind}, round {i + 1}/{rounds}: {primary.name} -> {other.name}")
                fault = run.crash(primary) if kind == "patroni" else run.switchover(primary, other)
                run.failover(kind, fault, other)
        run.platform.stop()
        run.fencing_checks(run.cluster.primary())
        figures = run.figures
        return figures
    finally:
        run.cleanup()


# --- what synchronous replication costs each call ------------------------------------
SYNC_SCRIPTS = {
    # a new tenure every call (the 1 us ttl has run out by the next one): a durable commit
    "acquire (new tenure)":
        "SELECT * FROM singleton_acquire('aq-' || :client_id, '1 microsecond', 'bench-aq');\n",
    # the client's default: session-bound; its heartbeats skip the flush wait
    "heartbeat, session-bound lease":
        "\\if :tok = 0\nSELECT token AS tok FROM singleton_acquire('hbb-' || :client_id, '1 day', "
        "'bench-hbb') \\gset\n\\endif\nSELECT singleton_heartbeat('hbb-' || :client_id, :tok);\n",
    # pooled (bind_session = off): durable heartbeats
    "heartbeat, pooled lease":
        "\\if :tok = 0\nSELECT token AS tok FROM singleton_acquire('hbp-' || :client_id, '1 day', "
        "'bench-hbp') \\gset\n\\endif\nSELECT singleton_heartbeat('hbp-' || :client_id, :tok);\n",
}


def pgbench_latency_ms(run, name, seconds):
    path = os.path.join(run.workdir, "script.sql")
    with open(path, "w") as f:
        f.write(SYNC_SCRIPTS[name])
    env = dict(os.environ)
    if "pooled" in name:
        env["PGOPTIONS"] = "-c singleton_lock.bind_session=off"
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
    r = subprocess.run([f"{bindir}/pgbench", "-n", "-T", str(seconds), "-c", "1", "-D", "tok=0",
                        "-f", path, "-h", "127.0.0.1", "-p", str(run.primary.port), "-U", USER,
                        "postgres"], capture_output=True, text=True, env=env)
    line = next((l for l in r.stdout.splitlines() if l.startswith("latency average")), None)
    if r.returncode or line is None:
        raise Failure(f"pgbench {name}: {r.stdout}{r.stderr}")
    return float(line.split("=")[1].split()[0])


def set_sync(run, on):
    value = "*" if on else ""
    run.primary.query(f"ALTER SYSTEM SET synchronous_standby_names = '{value}'")
    run.primary.query("SELECT pg_reload_conf()")
    want = "sync" if on else "async"
    wait_for(f"the standby to be {want}", lambda: run.primary.value(
        "SELECT count(*) FROM pg_stat_replication WHERE sync_state = %s", (want,)) == 1)


def bench_sync_cost(rounds, seconds=4):
    """Latency of single calls with an asynchronous vs a synchronous standby,
    interleaved rounds; returns {(name, mode): [ms per round]}."""
    run = Streaming("async")
    out = {}
    try:
        run.setup_cluster()
        for r in range(rounds):
            modes = (False, True) if r % 2 == 0 else (True, False)
            for on in modes:
                set_sync(run, on)
                for name in SYNC_SCRIPTS:
                    ms = pgbench_latency_ms(run, name, seconds)
                    out.setdefault((name, "sync" if on else "async"), []).append(ms)
                    log(f"sync cost, round {r + 1}/{rounds}: {name}, {'sync' if on else 'async'}: "
                        f"{ms:.3f} ms")
        return out
    finally:
        run.cleanup()


def render_sync_cost(cost):
    lines = ["Cost of synchronous replication per call (one client, standby on the same machine, "
             "pgbench latency average, median of interleaved rounds; fsync on, but see the file system above):", "",
             "| call | asynchronous standby | synchronous standby | ratio |", "|---|---|---|---|"]
    for name in SYNC_SCRIPTS:
        a = statistics.median(cost[(name, "async")])
        s = statistics.median(cost[(name, "sync")])
        lines.append(f"| {name} | {a:.2f} ms | {s:.2f} ms | {s / a:.1f} x |")
    return "\n".join(lines + [""])


def stats(figures, kind, key):
    values = [v for k, v in figures if k == f"{kind}: {key}"]
    if not values:
        return "–", 0
    return f"{statistics.median(values):.0f} / {max(values):.0f}", len(values)


def machine():
    def out(*cmd):
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if "model name" in l), "?")
    return (f"{os.cpu_count()} CPUs ({cpu}), {out('pg_config', '--version')}, "
            f"{out('patroni', '--version')}, etcd {out('etcd', '--version').splitlines()[0].split()[-1]}, "
            f"commit {out('git', '-C', ROOT, 'rev-parse', '--short', 'HEAD')}, data directories "
            f"on {out('stat', '-f', '-c', '%T', tempfile.gettempdir())} ({tempfile.gettempdir()})")


TITLES = {"plain": "plain streaming replication: crash, `pg_ctl promote` 0–3 s later",
          "patroni": "Patroni: kill -9 of the primary's postmaster, automatic failover",
          "switchover": "Patroni: `patronictl switchover`"}


def render(figures, kinds):
    lines = ["## Database failover (`make bench-failover`)", "",
             f"Machine: {machine()}. Three `singleton-lock run --ttl 5s` instances with "
             "`host=A,B target_session_attrs=read-write`, COMMAND writing to a fenced ledger "
             "every 20 ms (test/bench/failover.py). Patroni: ttl 10 s, loop_wait 1 s, "
             "retry_timeout 4 s, primary_start_timeout 0. Milliseconds, p50 / max.", "",
             "| failover | rounds | " + " | ".join(h for _, h in STEPS) + " |",
             "|---|---|" + "---|" * len(STEPS)]
    for kind in [k for k in kinds if k in TITLES]:
        cells = [stats(figures, kind, key) for key, _ in STEPS]
        n = max(c[1] for c in cells)
        lines.append(f"| {TITLES[kind]} | {n} | " + " | ".join(c[0] for c in cells) + " |")
    lines += ["", "Target (SPEC): new primary accepts writes → one new leader's COMMAND runs "
              "≤ 1 s. \"fault → new primary accepts writes\" is the failover manager's own "
              "time (for plain promotion: the random gap chosen by the benchmark).", ""]
    return "\n".join(lines)


def main():
    out = sys.argv[1]
    figures = []
    if "plain" in KINDS:
        figures += bench_plain(ROUNDS)
    patroni_kinds = [k for k in KINDS if k in ("patroni", "switchover")]
    if patroni_kinds:
        figures += bench_patroni(patroni_kinds, ROUNDS)
    text = render(figures, KINDS)
    if "sync_cost" in KINDS:
        text += "\n" + render_sync_cost(bench_sync_cost(max(3, ROUNDS // 2)))
    with open(out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
