#!/usr/bin/env python3
"""Handover benchmark driver: real `singleton-lock run` processes (test/bench/handover.sh).

usage: handover.py CLI SERVICE DSN WORKDIR RESULTS

Appends key=value lines to RESULTS (read by report.py) and writes one sample
file per measurement to WORKDIR (one latency in ms per line).

Every instance runs `singleton-lock run --name N --ttl T --dsn DSN -- SERVICE
EVENTS TAG tree`; SERVICE (handover_service.c) appends "start TAG NS ... OVERLAP"
to EVENTS as soon as it is exec'd and "exit TAG NS" when it gets SIGTERM, NS
being CLOCK_MONOTONIC (the same clock as time.monotonic_ns() here). OVERLAP
counts the processes of earlier instances (each starts a child in its group and
a setsid daemon that ignores SIGTERM) still running at that first instant: an
overlap of leaders in processes, which must never happen. Before each fault
the standby is waiting inside the server (its backend has wait_event_type
'Extension'), then a random delay of 0..BENCH_HO_JITTER_MS puts the fault at a
random phase of the leader's heartbeats and the standby's 1 s wait slices.

Settings (environment): BENCH_HO_ROUNDS (graceful and kill rounds, default 30),
BENCH_HO_STOP_ROUNDS (SIGSTOP rounds, default 5), BENCH_HO_BASELINE_ROUNDS
(incident-policy emulation rounds per fault kind, default 2),
BENCH_HO_JITTER_MS (default 400).
"""
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

CLI, SERVICE, DSN, WORK, RESULTS = sys.argv[1:6]
ROUNDS = int(os.environ.get("BENCH_HO_ROUNDS", "30"))
STOP_ROUNDS = int(os.environ.get("BENCH_HO_STOP_ROUNDS", "5"))
BASE_ROUNDS = int(os.environ.get("BENCH_HO_BASELINE_ROUNDS", "2"))
JITTER = int(os.environ.get("BENCH_HO_JITTER_MS", "400")) / 1000.0
EVENTS = os.path.join(WORK, "events")
open(EVENTS, "w").close()
mono = time.monotonic_ns


def log(msg):
    print(f"[handover {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def put(key, value):
    with open(RESULTS, "a") as f:
        f.write(f"{key}={value}\n")


def save(key, values):
    path = os.path.join(WORK, f"ho_{key}.txt")
    with open(path, "w") as f:
        f.writelines(f"{v:.3f}\n" for v in values)
    put(f"ho.{key}", path)


def psql(sql, dsn=DSN):
    return subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def events():
    starts, exits = {}, {}
    with open(EVENTS) as f:
        for line in f:
            p = line.split()
            if p and p[0] == "start" and len(p) >= 7:
                starts[p[1]] = {"ns": int(p[2]), "pid": int(p[3]), "pgid": int(p[4]), "token": p[5],
                                "overlap": int(p[6])}
            elif p and p[0] == "exit" and len(p) >= 3:
                exits[p[1]] = int(p[2])
    return starts, exits


def wait_until(what, limit, fn, step=0.0005):
    deadline = time.monotonic() + limit
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise SystemExit(f"handover.py: timed out waiting for {what}")
        time.sleep(step)


def started(tag):
    return events()[0].get(tag)


class Instance:
    seq = 0
    all = []

    def __init__(self, name, ttl, extra=()):
        Instance.seq += 1
        self.tag = f"{name}-{Instance.seq}"
        self.app = f"slbench-{self.tag}"
        self.log = os.path.join(WORK, f"{self.tag}.log")
        dsn = f"{DSN} application_name={self.app}"
        self.proc = subprocess.Popen(
            [CLI, "run", "--name", name, "--ttl", ttl, "--dsn", dsn, *extra, "--",
             SERVICE, EVENTS, self.tag, "tree"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"),
            start_new_session=True)
        self.pid = self.proc.pid
        Instance.all.append(self)

    def waiting(self):
        """True once the standby's backend sleeps in the extension's wait."""
        return psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    f"'{self.app}' AND wait_event_type = 'Extension'") != "0"

    def wait_standby(self):
        wait_until(f"{self.tag} to wait as a standby", 20, self.waiting, step=0.01)

    def rc(self, limit=30):
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "timeout"


def log_time(inst, pattern):
    """Monotonic ns of the first log line of inst matching pattern (the log's
    timestamps are realtime with 1 ms resolution)."""
    from datetime import datetime, timezone
    off = time.time_ns() - mono()
    for line in open(inst.log):
        if pattern in line:
            ts = datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            return int(ts.timestamp() * 1e9) - off
    return None


def pcts(v):
    s = sorted(v)
    import math
    def p(q):
        return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]
    return p(50), p(99), s[-1]


# --- graceful (SIGTERM) and kill -9 -------------------------------------------------
def chain(kind, rounds, ttl):
    name = f"ho-{kind}"
    from_fault, from_exit, rcs, overlaps, tokens_ok = [], [], [], 0, True
    pairs = []
    leader = Instance(name, ttl)
    wait_until("the first leader", 20, lambda: started(leader.tag))
    standby = Instance(name, ttl)
    standby.wait_standby()
    for i in range(rounds):
        time.sleep(random.uniform(0, JITTER))
        old = started(leader.tag)
        t0 = mono()
        os.kill(leader.pid, signal.SIGTERM if kind == "graceful" else signal.SIGKILL)
        new = wait_until(f"{standby.tag} to lead", 30, lambda: started(standby.tag))
        if new["overlap"] != 0:  # old processes ran at the new COMMAND's first instant
            overlaps += 1
        rcs.append(leader.rc())
        from_fault.append((new["ns"] - t0) / 1e6)
        if kind == "graceful":
            ex = events()[1].get(leader.tag)
            if (ex is None or ex > new["ns"]) and new["overlap"] == 0:  # (not counted twice)
                overlaps += 1
            if ex is not None:
                from_exit.append((new["ns"] - ex) / 1e6)
        if int(new["token"]) <= int(old["token"]):
            tokens_ok = False
        pairs.append((leader, standby, t0, new["ns"]))
        leader, standby = standby, Instance(name, ttl)
        standby.wait_standby()
    for inst in (leader, standby):
        os.kill(inst.pid, signal.SIGTERM)
        inst.rc()
    # where the time goes, from the wrappers' logs (1 ms resolution): the old wrapper's
    # "released" (graceful) and the new one's "leader" line
    rel, lead, start = [], [], []
    for old_i, new_i, t0, ns in pairs:
        r = log_time(old_i, '": released') if kind == "graceful" else t0
        l = log_time(new_i, '": leader, token')
        if r is not None and l is not None:
            rel.append((r - t0) / 1e6)
            lead.append((l - r) / 1e6)
            start.append((ns - l) / 1e6)
    put(f"ho.{kind}.breakdown", " ".join(f"{pcts(v)[0]:.1f}" for v in (rel, lead, start)))
    save(f"{kind}.from_fault", from_fault)
    if from_exit:
        save(f"{kind}.from_exit", from_exit)
    put(f"ho.{kind}.rounds", rounds)
    put(f"ho.{kind}.ttl", ttl)
    put(f"ho.{kind}.old_rc", " ".join(sorted({str(r) for r in rcs})))
    put(f"ho.{kind}.overlaps", overlaps)
    put(f"ho.{kind}.tokens_increase", "yes" if tokens_ok else "NO")
    p50, p99, mx = pcts(from_fault)
    log(f"{kind}: {rounds} rounds, from the fault p50 {p50:.2f} p99 {p99:.2f} max {mx:.2f} ms, "
        f"{overlaps} overlaps"
        + (f"; from old COMMAND's exit p50 {pcts(from_exit)[0]:.2f} p99 {pcts(from_exit)[1]:.2f} ms"
           if from_exit else "") + f"; old wrapper exit codes {sorted({str(r) for r in rcs})}")


# --- SIGSTOP --------------------------------------------------------------------------
def lease_expiry_mono(name):
    """The lease's expires_at (server clock, same host) on the monotonic clock."""
    exp_ns = int(psql(f"SELECT (extract(epoch FROM expires_at) * 1e6)::bigint * 1000 "
                      f"FROM singleton_leases WHERE name = '{name}'"))
    off = time.time_ns() - mono()
    return exp_ns - off


def stopped(kind, rounds, ttl):
    """kind 'all': the wrapper and COMMAND's whole process group (supervisor + COMMAND)
    are stopped, as in a frozen VM. kind 'wrapper': only singleton-lock is stopped;
    its supervising process must kill COMMAND before the lease can expire."""
    name = f"ho-stop-{kind}"
    ttl_ms = int(ttl.rstrip("s")) * 1000
    from_fault, after_expiry, exit_before_expiry, rcs, overlaps = [], [], [], [], 0
    for i in range(rounds):
        leader = Instance(name, ttl)
        wait_until("the leader", 20, lambda: started(leader.tag))
        standby = Instance(name, ttl)
        standby.wait_standby()
        time.sleep(random.uniform(0, JITTER))
        old = started(leader.tag)
        t0 = mono()
        # the supervising process is COMMAND's parent, outside COMMAND's group
        sup = int(open(f"/proc/{old['pid']}/stat").read().rsplit(")", 1)[1].split()[1])
        os.kill(leader.pid, signal.SIGSTOP)
        if kind == "all":
            os.kill(sup, signal.SIGSTOP)
            os.killpg(old["pgid"], signal.SIGSTOP)
        time.sleep(0.1)  # a heartbeat already sent has landed by now
        exp = lease_expiry_mono(name)
        new = wait_until(f"{standby.tag} to lead", ttl_ms / 1000 + 20, lambda: started(standby.tag),
                         step=0.001)
        from_fault.append((new["ns"] - t0) / 1e6)
        after_expiry.append((new["ns"] - exp) / 1e6)
        ex = events()[1].get(leader.tag)
        if kind == "wrapper":
            if ex is None or ex > new["ns"] or new["overlap"] != 0:
                overlaps += 1
            else:
                exit_before_expiry.append((exp - ex) / 1e6)
        if kind == "all":
            os.killpg(old["pgid"], signal.SIGCONT)
            os.kill(sup, signal.SIGCONT)
        os.kill(leader.pid, signal.SIGCONT)
        rcs.append(leader.rc())
        os.kill(standby.pid, signal.SIGTERM)
        standby.rc()
    save(f"stop_{kind}.from_fault", from_fault)
    save(f"stop_{kind}.after_expiry", after_expiry)
    if exit_before_expiry:
        save(f"stop_{kind}.exit_before_expiry", exit_before_expiry)
    put(f"ho.stop_{kind}.rounds", rounds)
    put(f"ho.stop_{kind}.ttl", ttl)
    put(f"ho.stop_{kind}.old_rc", " ".join(sorted({str(r) for r in rcs})))
    put(f"ho.stop_{kind}.overlaps", overlaps)
    log(f"SIGSTOP ({kind}), ttl {ttl}: from SIGSTOP max {max(from_fault):.1f} ms, after the lease "
        f"expiry max {max(after_expiry):.1f} ms; resumed wrapper exit codes {sorted({str(r) for r in rcs})}"
        + (f"; old COMMAND killed {min(exit_before_expiry):.0f}..{max(exit_before_expiry):.0f} ms "
           f"before the expiry, {overlaps} overlaps" if kind == "wrapper" else ""))


# --- standby memory ---------------------------------------------------------------------
def memory():
    holder = Instance("ho-mem", "10s")
    wait_until("the memory test's leader", 20, lambda: started(holder.tag))
    for label, extra in (("plain", ()), ("health", ("--health-addr", "127.0.0.1:0"))):
        inst = Instance("ho-mem", "10s", extra)
        inst.wait_standby()
        time.sleep(1.0)
        put(f"ho.rss.{label}", mem_of(inst.pid))
        os.kill(inst.pid, signal.SIGTERM)
        inst.rc()
    # the leader: the wrapper and its supervising process (COMMAND's parent)
    sup = int(open(f"/proc/{started(holder.tag)['pid']}/stat").read().rsplit(")", 1)[1].split()[1])
    put("ho.rss.leader", mem_of(holder.pid))
    put("ho.rss.supervisor", mem_of(sup))
    os.kill(holder.pid, signal.SIGTERM)
    holder.rc()
    log("memory measured")


def mem_of(pid):
    st = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        st[k] = v.split()[0] if v.split() else ""
    sm = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        m = re.match(r"(\w+):\s+(\d+) kB", line)
        if m:
            sm[m.group(1)] = int(m.group(2))
    uss = sm.get("Private_Clean", 0) + sm.get("Private_Dirty", 0)
    return (f"{st['VmRSS']} {sm.get('Pss', 0)} {uss} {st.get('RssAnon', 0)} {st.get('RssFile', 0)} "
            f"{st.get('Threads', 0)}")


# --- the incident's fixed policy, emulated ----------------------------------------------
# Advisory lock plus a heartbeat row: the active instance holds pg_advisory_lock(K) in
# its session and updates its row every 3 s; a new instance tries up to 5 times, 3 s
# apart, and becomes active only with the lock AND a heartbeat older than the 10 s
# lease TTL; after the 5th failed try it stays passive. The new instance starts trying
# at the moment of the fault (the most favourable case for the policy).
class Psql:
    def __init__(self):
        self.p = subprocess.Popen(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", DSN],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def q(self, sql):
        self.p.stdin.write(sql.rstrip(";") + ";\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()


TTL, BEAT, TRIES, GAP = 10.0, 3.0, 5, 3.0


def incident_round(kind, key, out):
    row = f"bot-{kind}-{key}"
    old = Psql()
    old.q(f"SELECT pg_advisory_lock({key})")
    stop = threading.Event()

    def beat():
        try:
            while not stop.is_set():
                old.q(f"INSERT INTO incident_heartbeat VALUES ('{row}', now()) "
                      "ON CONFLICT (name) DO UPDATE SET beat_at = now() RETURNING 1")
                if stop.wait(BEAT):
                    return
        except (BrokenPipeError, OSError):
            return
    th = threading.Thread(target=beat)
    th.start()
    time.sleep(random.uniform(BEAT, 2 * BEAT))  # a random heartbeat phase
    t0 = mono()
    if kind == "graceful":     # stop heartbeating, disconnect (the lock goes with the session)
        stop.set()
        th.join()
        old.p.stdin.close()
        old.p.wait()
    else:                      # kill -9 of the old instance
        stop.set()
        old.p.kill()
        old.p.wait()
        th.join()
    new = Psql()
    result = None
    for i in range(TRIES):
        got = new.q(f"SELECT pg_try_advisory_lock({key})")
        stale = new.q(f"SELECT now() - beat_at > interval '{TTL} s' FROM incident_heartbeat "
                      f"WHERE name = '{row}'")
        if got == "t" and stale == "t":
            result = (mono() - t0) / 1e6
            break
        if got == "t":
            new.q(f"SELECT pg_advisory_unlock({key})")
        if i < TRIES - 1:
            time.sleep(GAP)
    new.p.stdin.close()
    new.p.wait()
    out.append(result)


def incident():
    psql("CREATE TABLE IF NOT EXISTS incident_heartbeat (name text PRIMARY KEY, beat_at timestamptz)")
    results = {"graceful": [], "kill": []}
    threads = []
    for kind in results:
        for r in range(BASE_ROUNDS):
            key = 9000 + len(threads)
            threads.append(threading.Thread(target=incident_round, args=(kind, key, results[kind])))
    for t in threads:
        t.start()
        time.sleep(0.37)
    for t in threads:
        t.join()
    for kind, v in results.items():
        got = [x for x in v if x is not None]
        save(f"incident_{kind}", got)
        put(f"ho.incident_{kind}.rounds", len(v))
        put(f"ho.incident_{kind}.passive", len(v) - len(got))
        log(f"incident policy, {kind}: {', '.join(f'{x / 1000:.2f} s' for x in got)}; "
            f"{len(v) - len(got)} passive")
    # Computed from the parameters: at the fault the row is 0..3 s old (uniform phase
    # of the 3 s heartbeat); the new instance becomes active at its first try after
    # the row is 10 s old (both fault kinds look the same to it). "at_fault": its
    # tries start at the fault (as emulated above): 9 s or 12 s. "random_phase": its
    # tries run at a random phase (it started earlier; it may then run out of tries).
    rnd = random.Random(1)
    for label, phase in (("at_fault", lambda: 0.0), ("random_phase", lambda: rnd.uniform(0, GAP))):
        sims = []
        for _ in range(200000):
            need = TTL - rnd.uniform(0, BEAT)
            first_try = phase()
            k = max(0, -(-(need - first_try) // GAP))
            sims.append((first_try + k * GAP) * 1000)
        p50, p99, mx = pcts(sims)
        put(f"ho.incident_computed.{label}", f"{min(sims):.0f} {p50:.0f} {p99:.0f} {mx:.0f}")


def cleanup():
    """Kills what is left of our own instances (an interrupted run)."""
    starts = events()[0]
    for inst in Instance.all:
        if inst.proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(inst.pid, sig)
                except OSError:
                    pass
        s = starts.get(inst.tag)
        if s:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.killpg(s["pgid"], sig)
                except OSError:
                    pass


def main():
    import atexit
    atexit.register(cleanup)
    random.seed()
    parts = os.environ.get("BENCH_HO_PARTS", "graceful kill stop memory incident").split()
    bg = None
    if "graceful" in parts:
        chain("graceful", ROUNDS, "10s")
    if "kill" in parts:
        chain("kill", ROUNDS, "10s")
    if "incident" in parts:
        # slow (about 10 s per round, mostly sleeping): runs alongside the SIGSTOP
        # part, whose figures are seconds, not milliseconds
        bg = threading.Thread(target=incident)
        bg.start()
    if "stop" in parts:
        stopped("all", STOP_ROUNDS, "2s")
        stopped("wrapper", max(2, STOP_ROUNDS - 2), "2s")
    if bg:
        bg.join()
    if "memory" in parts:
        memory()


main()
