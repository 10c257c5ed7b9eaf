#!/usr/bin/env python3
"""Failover under plain streaming replication (test/scenarios/failover_streaming.sh MODE).

MODE async: a primary and an asynchronous hot standby (pg_basebackup), three
`singleton-lock run` instances with the DSN
  host=127.0.0.1,127.0.0.1 port=P,S target_session_attrs=read-write
each wrapping a worker that writes to a fenced ledger on the cluster. The
standby is cut off (primary_conninfo = ''), the primary hands the lease over
twice more (tenures the standby never receives) and takes a pooled lease
(bind_session = off); then the primary crashes (pg_ctl stop -m immediate),
nothing is promoted for 3 s, then the standby is promoted. Checks:
  - the old leader's COMMAND stops as soon as its connection breaks;
  - while the DSN reaches only a standby: no COMMAND, every instance healthy as
    a standby, one log line per state change;
  - one instance leads on the new primary; figure: new primary accepts writes
    -> new COMMAND starts / first fenced write;
  - every token issued after the promotion is above every token issued before,
    including those the standby never received (verified lost);
  - the fencing checker over the ledger on the new primary and over the journal;
    the acknowledged writes the new primary lacks are exactly the lost ones;
  - pooled leases: one replicated before the cut stays held on the new primary
    until its TTL (its holder can go on renewing it), one taken after the cut
    is free at once, a renewal the standby never received is lost.
MODE sync: synchronous_standby_names = '*', synchronous_commit = on; instead of
the cut, WAL replay is paused on the standby (it receives but does not apply)
while the primary issues tenures. The same checks, and nothing acknowledged is
lost: every tenure, ledger write and pooled lease is on the new primary.
Also: each of our functions called on the hot standby fails with SQLSTATE
25006 and a hint to connect to the primary; an instance whose DSN names only
the standby (no target_session_attrs) keeps retrying, logs once, never leads.
"""
import os
import subprocess
import sys
import time

import psycopg

from instances import healthz
from ledger import SCHEMA_SQL, lost_writes
from pg import USER, Failure, Server, wait_for
from probe import WriteProbe
from scenario import CLI, LEASE, Scenario, ms

MODE = sys.argv[1] if len(sys.argv) > 1 else "async"
# Below the kernel's ephemeral port range (32768-60999), so that no client
# connection's local port can hold one of them when a server starts.
PORTS = {"async": (25480, 25481, 25500), "sync": (25482, 25483, 25510)}
TTL = "5s"
INSTANCES = 3
NO_PRIMARY_SECONDS = 3.0
POOLED = "-c singleton_lock.bind_session=off"


class Streaming(Scenario):
    def __init__(self, mode):
        super().__init__(f"failover_streaming_{mode}")
        self.mode = mode
        p, s, self.health_base = PORTS[mode]
        self.primary = Server("primary", p, self.workdir)
        self.standby = Server("standby", s, self.workdir)
        attrs = "read-write" if mode == "async" else "primary"
        self.dsn = (f"host=127.0.0.1,127.0.0.1 port={p},{s} user={USER} dbname=postgres "
                    f"target_session_attrs={attrs}")
        self.pooled = {}
        self.tokens_after = set()

    def stop_servers(self):
        for server in (self.primary, self.standby):
            server.stop("immediate")

    # --- setup -------------------------------------------------------------------
    def setup_cluster(self):
        self.primary.initdb()
        self.primary.start()
        with self.primary.connect() as c:
            c.execute("CREATE EXTENSION singleton_lock")
            c.execute(SCHEMA_SQL)
        self.standby.basebackup_from(self.primary)
        self.standby.start()
        if self.mode == "sync":  # set after the base backup: the standby must not inherit it
            self.primary.query("ALTER SYSTEM SET synchronous_standby_names = '*'")
            self.primary.query("SELECT pg_reload_conf()")
        want = "sync" if self.mode == "sync" else "async"
        wait_for(f"the standby to stream ({want})", lambda: self.primary.value(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
            "AND sync_state = %s", (want,)) == 1)
        if not self.standby.in_recovery():
            raise Failure("the standby is not in recovery")
        self.ok(f"primary on port {self.primary.port}, hot standby on port {self.standby.port}, "
                f"streaming ({want}); DSN: {self.dsn}")

    def standby_refuses_with_hint(self):
        calls = ["SELECT * FROM singleton_acquire('x', '5s', 'h')",
                 "SELECT singleton_heartbeat('x', 1)", "SELECT singleton_release('x', 1)",
                 "SELECT singleton_assert('x', 1)", "SELECT singleton_force_release('x')",
                 "SELECT singleton_bind('x', 1)", "SELECT singleton_watch('x', 1, '1s')",
                 "SELECT singleton_pause('x', 'r')", "SELECT singleton_resume('x')"]
        for sql in calls:
            try:
                self.standby.query(sql)
                raise Failure(f"{sql} succeeded on the hot standby")
            except psycopg.Error as e:
                hint = e.diag.message_hint or ""
                if e.sqlstate != "25006" or "primary" not in hint:
                    raise Failure(f"{sql} on the hot standby: SQLSTATE {e.sqlstate}, "
                                  f"{e.diag.message_primary!r}, hint {hint!r}")
        self.ok(f"each of our {len(calls)} functions that act on leases, on the hot standby: "
                f"SQLSTATE 25006, hint {hint!r}")

    # --- before the crash ----------------------------------------------------------
    def pooled_acquire(self, name, holder):
        acquired, token, _, expires = self.primary.query(
            "SELECT * FROM singleton_acquire(%s, '60s', %s)", (name, holder), POOLED)[0]
        if not acquired:
            raise Failure(f"could not take pooled lease {name}")
        self.pooled[name] = {"holder": holder, "token": token, "expires": expires}
        return token

    def replicated_token(self, name):
        return self.standby.value(
            "SELECT token FROM singleton_lock_leases WHERE name = %s", (name,)) or 0

    def hold_back_standby(self):
        """async: cut the standby off; sync: pause its replay. Verified."""
        if self.mode == "async":
            self.standby.query("ALTER SYSTEM SET primary_conninfo = ''")
            self.standby.query("SELECT pg_reload_conf()")
            wait_for("the WAL receiver to stop", lambda: self.standby.value(
                "SELECT count(*) FROM pg_stat_wal_receiver") == 0)
            wait_for("the WAL sender to go", lambda: self.primary.value(
                "SELECT count(*) FROM pg_stat_replication") == 0)
            self.ok("standby cut off: no WAL receiver on it, no WAL sender on the primary")
        else:
            self.standby.query("SELECT pg_wal_replay_pause()")
            wait_for("replay to pause", lambda: self.standby.value(
                "SELECT pg_get_wal_replay_pause_state()") == "paused")
            self.ok("WAL replay paused on the standby (it still receives WAL)")

    def tenures_the_standby_lacks(self):
        """Pooled leases, then two handovers while the standby is held back."""
        kept = self.pooled_acquire("pooled-kept", "pooled-holder-a")
        wait_for("the standby to replay pooled-kept", lambda: self.replicated_token("pooled-kept") == kept)
        self.hold_back_standby()
        self.pooled_acquire("pooled-late", "pooled-holder-c")
        renewed = self.primary.value("SELECT singleton_heartbeat('pooled-kept', %s, '60s')",
                                     (kept,), POOLED)
        self.pooled["pooled-kept"]["renewed"] = renewed
        for _ in range(2):
            self.handover()
        issued = self.primary.value("SELECT token FROM singleton_leases WHERE name = %s", (LEASE,))
        seen = self.replicated_token(LEASE)
        if seen >= issued:
            raise Failure(f"the standby already has token {seen} (primary issued {issued})")
        if self.mode == "sync":
            flushed = self.primary.value("SELECT pg_current_wal_flush_lsn()::text")
            wait_for("the standby to receive every acknowledged commit", lambda: self.standby.value(
                "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (flushed,)))
        self.issued_before = self.tokens_seen() | {issued}
        self.primary_last_token, self.standby_last_token = issued, seen
        self.ok(f"the primary issued tokens up to {issued}; the standby has applied only up to "
                f"{seen}" + (" (but received them)" if self.mode == "sync" else " (never received)"))

    # --- the failover ------------------------------------------------------------
    def crash_and_promote(self):
        leader = self.current_leader()
        crash_ns = time.time_ns()
        self.primary.crash()
        self.ok(f"primary crashed (pg_ctl stop -m immediate): postmaster gone, port "
                f"{self.primary.port} refuses connections")
        self.old_leader_stops(leader, crash_ns, "primary crash")
        remaining = NO_PRIMARY_SECONDS - (time.time_ns() - crash_ns) / 1e9
        standby_only = self.start_standby_only_instance(max(remaining, 1.0) + 2)
        self.standbys_keep_looking(crash_ns, max(remaining, 1.0), "no primary")
        self.check_standby_only_instance(standby_only)
        probe = WriteProbe(self.standby.dsn()).start()
        self.standby.promote()
        accepted_ns = probe.wait(timeout=60)
        if accepted_ns is None:
            raise Failure("the promoted standby never accepted a write")
        self.ok(f"standby promoted; it accepted its first write {ms(accepted_ns - crash_ns):.0f} ms "
                f"after the crash")
        new = self.wait_new_leader(self.issued_before, timeout=60)
        with self.standby.connect() as c:
            self.new_leader_figures(new, accepted_ns, crash_ns, f"{self.mode} promotion", c)
        self.exactly_one_leader(self.standby)
        self.crash_ns, self.accepted_ns = crash_ns, accepted_ns

    # --- an instance whose DSN names only the standby, without target_session_attrs
    def start_standby_only_instance(self, fresh_wait_s):
        """Two instances started while there is no primary: one whose DSN names
        only the standby, and one with the cluster's DSN (it has never reached
        the primary; libpq refuses the read-only standby)."""
        log = open(os.path.join(self.workdir, "standby-only.log"), "w")
        proc = subprocess.Popen([CLI, "run", "--name", LEASE, "--ttl", TTL, "--wait", "2s",
                                 "--dsn", self.standby.dsn(), "--", "touch",
                                 os.path.join(self.workdir, "standby-only-ran")],
                                stdout=log, stderr=log)
        log.close()
        log = open(os.path.join(self.workdir, "started-without-primary.log"), "w")
        fresh = subprocess.Popen([CLI, "run", "--name", LEASE, "--ttl", TTL,
                                  "--wait", f"{int(fresh_wait_s * 1000)}ms",
                                  "--dsn", self.dsn, "--health-addr",
                                  f"127.0.0.1:{self.health_base + 9}", "--", "true"],
                                 stdout=log, stderr=log)
        log.close()
        return proc, fresh

    def check_fresh_instance_health(self, fresh):
        """An instance that has only ever reached the read-only standby is
        looking for the primary: /healthz 200 'standby', not 'unreachable'."""
        port = self.health_base + 9
        seen = healthz(port)  # (it has been refused for seconds by now)
        code = fresh.wait(timeout=60)
        if seen != (200, "standby") or code != 75:
            raise Failure(f"instance started without a primary: /healthz {seen}, exit {code}")
        self.ok("an instance started while there was no primary (it never reached one; libpq "
                "refused the read-only standby) answered /healthz 200 standby and exited 75 when "
                "its --wait ran out")

    def check_standby_only_instance(self, procs):
        """It connects, every call fails with 25006: it keeps retrying (one log
        line), never leads, and exits 75 when --wait runs out."""
        proc, fresh = procs
        self.check_fresh_instance_health(fresh)
        code = proc.wait(timeout=60)
        with open(os.path.join(self.workdir, "standby-only.log")) as f:
            lines = f.read().splitlines()
        retries = [l for l in lines if "retrying" in l]
        ran = os.path.exists(os.path.join(self.workdir, "standby-only-ran"))
        # (its first call is LISTEN: PostgreSQL's own 25006 "... during recovery")
        standby_said = ("during recovery", "read-only standby")
        if code != 75 or ran or len(retries) != 1 or not any(t in retries[0] for t in standby_said):
            raise Failure(f"instance with a standby-only DSN: exit {code}, COMMAND ran: {ran}, "
                          f"log: {lines}")
        self.ok(f"an instance whose DSN reaches only the standby (no target_session_attrs) kept "
                f"retrying, logged once ({retries[0].split('database unavailable', 1)[1][:90]}...), "
                f"never ran COMMAND and exited 75 when --wait 2s ran out")

    # --- pooled leases after the failover ----------------------------------------------
    def pooled_after(self):
        kept, late = self.pooled["pooled-kept"], self.pooled["pooled-late"]
        s = self.standby
        row = s.query("SELECT holder, token, expires_at FROM singleton_lock_leases "
                      "WHERE name = 'pooled-kept'")[0]
        want_expiry = kept["renewed"] if self.mode == "sync" else kept["expires"]
        if row[:2] != (kept["holder"], kept["token"]) or row[2] != want_expiry:
            raise Failure(f"pooled-kept on the new primary: {row}, expected expiry {want_expiry}")
        other = s.query("SELECT acquired, holder FROM singleton_acquire('pooled-kept', '60s', "
                        "'pooled-holder-b')", options=POOLED)[0]
        if other != (False, kept["holder"]):
            raise Failure(f"pooled-kept was free on the new primary: {other}")
        renewed = s.value("SELECT singleton_heartbeat('pooled-kept', %s, '1s')", (kept["token"],),
                          POOLED)
        if renewed is None:
            raise Failure("the holder of pooled-kept could not renew it on the new primary")
        acquired, token = s.query("SELECT acquired, token FROM singleton_acquire('pooled-kept', "
                                  "'60s', 'pooled-holder-b', '30s')", options=POOLED)[0]
        at = s.value("SELECT acquired_at FROM singleton_lock_leases WHERE name = 'pooled-kept'")
        if not acquired or at < renewed or token <= kept["token"]:
            raise Failure(f"waited acquire of pooled-kept: {acquired} {token} at {at}, "
                          f"expiry was {renewed}")
        what = ("its renewal after the cut was lost" if self.mode == "async"
                else "its renewal while replay was paused survived")
        self.ok(f"pooled lease replicated before the failover: still held on the new primary "
                f"({what}), renewed there by its holder, taken by another holder only at its "
                f"expiry, with token {token}")
        self._pooled_late(late)

    def _pooled_late(self, late):
        s = self.standby
        got = s.query("SELECT acquired, token, holder FROM singleton_acquire('pooled-late', '60s', "
                      "'pooled-holder-d')", options=POOLED)[0]
        beat = s.value("SELECT singleton_heartbeat('pooled-late', %s)", (late["token"],), POOLED)
        if self.mode == "async":
            if not got[0] or got[1] <= late["token"] or beat is not None:
                raise Failure(f"pooled-late after the failover: {got}, old holder's heartbeat {beat}")
            self.ok(f"pooled lease taken after the cut (token {late['token']}, lost): free at once "
                    f"on the new primary, new token {got[1]}; its old holder's heartbeat -> NULL")
        else:
            if got[0] or got[2] != late["holder"] or beat is None:
                raise Failure(f"pooled-late after the failover: {got}, holder's heartbeat {beat}")
            self.ok("pooled lease taken while replay was paused: still held on the new primary, "
                    "its holder renews it")

    # --- after everything ----------------------------------------------------------
    def lost_commits_checks(self, journal, lost):
        """Asynchronous replication: what the new primary lacks is the tail of the
        acknowledged history before the crash, and includes every write of the
        tenures the standby never received."""
        acked = [w for w in journal if w.lease_ok and w.at_ns < self.accepted_ns]
        lost_ids = {w.write_id for w in lost}
        first = next((i for i, w in enumerate(acked) if w.write_id in lost_ids), None)
        unseen = [w for w in acked if w.token > self.standby_last_token]
        if first is None or any(w.write_id not in lost_ids for w in acked[first:]):
            raise Failure(f"the {len(lost)} lost writes are not the tail of the acknowledged ones")
        if not unseen or any(w.write_id not in lost_ids for w in unseen):
            raise Failure("writes of the tenures the standby never received are on the new primary")
        self.ok(f"{len(lost)} acknowledged ledger writes are not on the new primary: the last ones "
                f"before the crash, including all {len(unseen)} of the tenures the standby never "
                f"received (tokens {sorted({w.token for w in unseen})}): asynchronous "
                f"replication's loss window (docs/high-availability.md)")

    def final_checks(self):
        self.platform.stop()
        on_cluster, journal = self.fencing_checks(self.standby)
        # (the old primary may commit a few writes between crash_ns and its death)
        self.tokens_after |= {w.token for w in on_cluster if w.at_ns > self.accepted_ns and w.lease_ok}
        self.tokens_after |= {tok for kind, _, _, ns, tok in self.platform.events_list()
                              if kind == "start" and ns > self.crash_ns}
        self.tokens_grow(self.issued_before, self.tokens_after, f"{self.mode} promotion")
        lost = lost_writes(journal, on_cluster)
        if self.mode == "async":
            self.lost_commits_checks(journal, lost)
        else:
            last = self.standby.value("SELECT max(token) FROM ha_ledger WHERE at < "
                                      "to_timestamp(%s / 1e9)", (self.accepted_ns,))
            if lost or last != self.primary_last_token:
                raise Failure(f"synchronous replication lost {len(lost)} writes; last token {last}")
            self.ok(f"nothing acknowledged was lost: all {len(journal)} journal writes are on the "
                    f"new primary, up to the old primary's last token {last}")


def main():
    run = Streaming(MODE)

    def steps():
        run.setup_cluster()
        run.standby_refuses_with_hint()
        run.start_instances(run.dsn, TTL, INSTANCES, run.health_base)
        run.tenures_the_standby_lacks()
        run.crash_and_promote()
        run.pooled_after()
        run.final_checks()
    return run.main(steps)


if __name__ == "__main__":
    sys.exit(main())
