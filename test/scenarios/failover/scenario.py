"""What the failover scenarios share: the work directory, the instances, the
checks around one failover (old leader's COMMAND stopped, no leader while
there is no primary, one new leader, figures) and the final fencing checks."""
import glob
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone

import ledger
from instances import Platform
from pg import Failure, pid_alive, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CLI = os.environ.get("SL_CLI", os.path.join(ROOT, "build/client/client/singleton-lock"))
LEASE = "failover"


def ms(ns):
    return ns / 1e6


def log_time_ns(line):
    """The UTC timestamp singleton-lock puts at the start of each log line."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z", line)
    if not m:
        return None
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1e9)


class Scenario:
    def __init__(self, label):
        self.label = label
        self.workdir = tempfile.mkdtemp(prefix=f"singleton_lock_{label}.")
        os.chmod(self.workdir, 0o755)
        self.checks = 0
        self.figures = []
        self.platform = None
        self.issued_before = set()  # tokens issued before the current failover
        if not os.access(CLI, os.X_OK):
            raise Failure(f"no client at {CLI} (test/build_client.sh)")

    # --- reporting -------------------------------------------------------------
    def ok(self, message):
        self.checks += 1
        print(f"ok: {message}", flush=True)

    def figure(self, key, value_ms):
        self.figures.append((key, value_ms))
        print(f"figure: {key}: {value_ms:.0f} ms", flush=True)

    def cleanup(self, keep=False):
        """keep: a failed run; its logs' tails are printed (a sandbox's /tmp goes
        away with it) and the work directory is kept."""
        if self.platform:
            self.platform.stop()
        self.stop_servers()
        if keep:
            self.print_log_tails()
        if keep or os.environ.get("SL_FAILOVER_KEEP"):
            print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_servers(self):
        """Subclasses stop their database servers here (before the directory goes)."""

    def print_log_tails(self, lines=15):
        for pattern in ("slot*.log", "*/server.log", "*/patroni.log", "etcd/etcd.log"):
            for path in sorted(glob.glob(os.path.join(self.workdir, pattern))):
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-lines:]
                print(f"--- {os.path.relpath(path, self.workdir)} (last {len(tail)} lines)")
                print("".join(tail), end="")

    # --- instances -------------------------------------------------------------
    def start_instances(self, dsn, ttl, count, health_base):
        worker = ledger.build_worker(self.workdir)
        self.platform = Platform(CLI, worker, dsn, LEASE, ttl, self.workdir, count, health_base)
        self.platform.start()
        leader = self.wait_new_leader(set(), timeout=60)
        self.ok(f"{count} instances of singleton-lock run; {leader[1]} leads with token {leader[2]}")

    def journal(self):
        return ledger.read_journal(self.platform.journal)

    def wait_new_leader(self, old_tokens, timeout, writes=3):
        """(pid, instance, token, started_ns) of a running COMMAND whose token is
        above every token in old_tokens, once it has `writes` acknowledged writes."""
        floor = max(old_tokens, default=0)

        def found():
            running = self.platform.running_commands()
            for pid, (inst, tok, ns) in running.items():
                acked = sum(1 for w in self.journal() if w.token == tok and w.lease_ok)
                if tok > floor and acked >= writes:
                    return pid, inst, tok, ns
            return None
        return wait_for("a new leader writing to the ledger", found, timeout=timeout)

    def current_leader(self):
        running = self.platform.running_commands()
        if len(running) != 1:
            raise Failure(f"expected one running COMMAND, found {running}")
        pid, (inst, tok, ns) = next(iter(running.items()))
        return pid, inst, tok, ns

    def handover(self):
        """SIGTERM to the leader's singleton-lock (graceful); returns the next leader."""
        pid, inst, tok, _ = self.current_leader()
        self.platform.slot(inst).proc.terminate()
        return self.wait_new_leader({tok}, timeout=60)

    def tokens_seen(self):
        return {w.token for w in self.journal()} | {
            tok for kind, _, _, _, tok in self.platform.events_list() if kind == "start"}

    # --- around one failover -----------------------------------------------------
    def old_leader_stops(self, leader, crash_ns, what):
        """The old leader's COMMAND must stop because its connection broke
        (session-bound lease), not later by the deadline rule."""
        pid, inst, tok, _ = leader
        wait_for(f"the old leader's COMMAND ({inst}) to stop", lambda: not pid_alive(pid),
                 timeout=60)
        stopped = self.platform.command_stop_ns(pid) or time.time_ns()
        lines = [l for l in self.platform.slot(inst).log_lines() if "LOST" in l]
        if not lines or "connection lost" not in lines[-1]:
            raise Failure(f"{inst} did not report its lease lost with the connection: {lines[-1:]}")
        self.figure(f"{what}: old leader's COMMAND stopped after", ms(stopped - crash_ns))
        self.ok(f"old leader {inst} (token {tok}): COMMAND stopped {ms(stopped - crash_ns):.0f} ms "
                f"after {what}, reason: {lines[-1].split('LOST', 1)[1].strip()}")

    def standbys_keep_looking(self, since_ns, seconds, what):
        """For `seconds` with no primary: no COMMAND runs, every instance stays up
        and healthy as a standby, and logs one line per state change, not per retry."""
        end = time.monotonic() + seconds
        health = {}
        while time.monotonic() < end:
            running = self.platform.running_commands()
            if running:
                raise Failure(f"a COMMAND runs while there is no primary: {running}")
            if not health and time.monotonic() > end - seconds / 2:
                health = {s.name: s.healthz() for s in self.platform.slots}
            time.sleep(0.05)
        bad = {k: v for k, v in health.items() if v != (200, "standby")}
        if bad:
            raise Failure(f"/healthz while looking for the primary: {bad}")
        counts = {}
        for s in self.platform.slots:
            window = [l for l in s.log_lines() if (log_time_ns(l) or 0) >= since_ns]
            counts[s.name] = len(window)
            retries = [l for l in window if "retrying" in l]
            if not retries:
                raise Failure(f"{s.name} logged nothing about looking for the primary: {window}")
            # ~8 attempts in 3 s at the failover backoff; one line per distinct error
            if len(retries) > 3 or len(window) > 8:
                raise Failure(f"{s.name} logged {len(window)} lines in {seconds} s: {window}")
        sample = next(l for l in self.platform.slots[-1].log_lines()[::-1] if "retrying" in l)
        self.ok(f"{what}: for {seconds:.0f} s no COMMAND ran, every instance stayed healthy as a "
                f"standby (/healthz 200), log lines per instance {counts}; e.g. {sample[24:]}")

    def new_leader_figures(self, leader, accepted_ns, crash_ns, what, ledger_conn):
        """Figures from `accepted_ns` (the new primary accepted its first write)."""
        pid, inst, tok, started_ns = leader
        first_write_ns = ledger_conn.execute(
            "SELECT (extract(epoch FROM min(at)) * 1e9)::bigint FROM ha_ledger "
            "WHERE token = %s AND lease_ok", (tok,)).fetchone()[0]
        self.figure(f"{what}: new primary accepts writes -> new leader's COMMAND starts",
                    ms(started_ns - accepted_ns))
        self.figure(f"{what}: new primary accepts writes -> first fenced write of the new tenure",
                    ms(first_write_ns - accepted_ns))
        self.figure(f"{what}: fault -> new primary accepts writes", ms(accepted_ns - crash_ns))
        self.figure(f"{what}: fault -> new leader's COMMAND starts", ms(started_ns - crash_ns))
        verdict = "within" if started_ns - accepted_ns <= 1e9 else "ABOVE the 1 s target:"
        self.ok(f"{what}: {inst} leads on the new primary with token {tok}, COMMAND started "
                f"{ms(started_ns - accepted_ns):.0f} ms after it accepted writes ({verdict} 1 s)")
        return first_write_ns

    def exactly_one_leader(self, primary, seconds=2.0):
        """Over `seconds` (a few heartbeats), one COMMAND runs, always the same, and
        the new primary shows the lease held by that instance."""
        first = self.current_leader()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.current_leader()[0] != first[0]:
                raise Failure("the leader changed while nothing happened")
            time.sleep(0.05)
        holder = primary.value("SELECT holder FROM singleton_leases WHERE name = %s "
                               "AND state = 'held'", (LEASE,))
        if not holder or not holder.startswith(first[1] + "-"):
            raise Failure(f"the new primary shows holder {holder!r}, COMMAND runs in {first[1]}")
        self.ok(f"exactly one leader on the new primary for {seconds:.0f} s: {first[1]} "
                f"(holder {holder})")

    def tokens_grow(self, before, after, what):
        if not after or not before or min(after) <= max(before):
            raise Failure(f"{what}: tokens after ({sorted(after)}) not all above those before "
                          f"({sorted(before)})")
        self.ok(f"{what}: every token issued after it ({len(after)}, lowest {min(after)}) is above "
                f"every token issued before it ({len(before)}, highest {max(before)})")

    # --- final checks ----------------------------------------------------------
    def fencing_checks(self, primary):
        """The checker over the ledger on the (new) primary and over the journal."""
        with primary.connect() as c:
            on_cluster = ledger.read_ledger(c)
        journal = self.journal()
        for label, writes in (("ledger on the new primary (commit order)", on_cluster),
                              ("journal of acknowledged writes (real-time order)", journal)):
            v = ledger.check(writes)
            if v.problems() or len(v.tenures) < 2:
                raise Failure(f"fencing checker, {label}: {v.summary()}")
            self.ok(f"fencing checker, {label}: {v.summary()}")
        rejected = ledger.external_fence_rejections(journal)
        if rejected:
            raise Failure(f"the journal's token fence rejected {rejected} acknowledged writes")
        self.ok("the journal's own token fence never rejected an acknowledged write "
                "(tokens never went backwards)")
        return on_cluster, journal

    def report(self):
        print()
        for key, value in self.figures:
            print(f"  {value:8.0f} ms  {key}")
        print(f"{self.checks} passed, 0 failed")

    def explain_failure(self):
        """Prints what helps to understand a failure (a scenario may add to it)."""

    def main(self, steps):
        """Runs steps(); a Failure is printed (with explain_failure()); the
        cleanup keeps a failed run's work directory; the figures are reported
        when it passed. The exit status: 0 passed, 1 failed."""
        ok = False
        try:
            steps()
            ok = True
        except Failure as e:
            print(f"FAIL: {e}", file=sys.stderr)
            self.explain_failure()
        finally:
            self.cleanup(keep=not ok)
        if ok:
            self.report()
        return 0 if ok else 1
