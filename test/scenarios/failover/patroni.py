#!/usr/bin/env python3
"""Failover with a real Patroni cluster (test/scenarios/failover_patroni.sh).

etcd and two PostgreSQL members run by Patroni 3 on loopback (patroni_cluster.py);
three `singleton-lock run` instances with the DSN
  host=127.0.0.1,127.0.0.1 port=PG1,PG2 target_session_attrs=read-write
wrap a worker writing to the fenced ledger. Two failovers while they run:
  1. `patronictl switchover` from pg1 to pg2;
  2. kill -9 of pg2's postmaster (verified dead); Patroni fails over to pg1
     (primary_start_timeout = 0) and pg2 rejoins as a replica.
After each: the old leader's COMMAND stopped with its connection; no COMMAND
ran while there was no primary; one new leader on the new primary; every token
issued after the failover is above every token issued before it; the old
primary is back as a streaming replica. At the end the fencing checker runs over
the ledger and the journal, and everything is stopped and verified down.
Figures: fault -> new primary accepts writes -> new leader's COMMAND starts.
"""
import sys
import time

from patroni_cluster import PatroniCluster
from pg import Failure
from probe import WriteProbe
from scenario import Scenario

# (below the ephemeral port range, like streaming.py's)
PG_PORTS, API_PORTS, ETCD_PORTS = (25484, 25485), (25486, 25487), (25488, 25489)
HEALTH_BASE = 25520
TTL = "5s"
INSTANCES = 3


class PatroniScenario(Scenario):
    def __init__(self):
        super().__init__("failover_patroni")
        self.cluster = PatroniCluster(self.workdir, PG_PORTS, API_PORTS, ETCD_PORTS)

    def explain_failure(self):
        print(self.cluster.list(), file=sys.stderr)

    def stop_servers(self):
        try:
            self.cluster.stop()
        except Failure as e:
            print(f"cleanup: {e}", file=sys.stderr)

    def setup(self):
        first, second = self.cluster.start()
        extension = first.value("SELECT extversion FROM pg_extension WHERE extname = 'singleton_lock'")
        if not extension:
            raise Failure("post_bootstrap did not create the extension")
        self.ok(f"etcd healthy; Patroni bootstrapped {first.name} as primary (extension "
                f"{extension} created by post_bootstrap), {second.name} streams from it")
        print(self.cluster.list(), flush=True)

    def failover(self, what, fault, new_primary):
        """Runs fault() while the instances run; new_primary must take over."""
        leader = self.current_leader()
        before = self.tokens_seen()
        probe = WriteProbe(new_primary.dsn()).start()
        fault_ns = time.time_ns()
        detail = fault()
        self.ok(f"{what}: {detail}")
        self.old_leader_stops(leader, fault_ns, what)
        accepted_ns = probe.wait(timeout=120)
        if accepted_ns is None:
            raise Failure(f"{what}: {new_primary.name} never accepted a write")
        new = self.wait_new_leader(before, timeout=60)
        early = [e for e in self.platform.events_list()
                 if e[0] == "start" and fault_ns < e[3] < accepted_ns]
        if early:
            raise Failure(f"{what}: a COMMAND started while there was no primary: {early}")
        with new_primary.connect() as c:
            self.new_leader_figures(new, accepted_ns, fault_ns, what, c)
        self.exactly_one_leader(new_primary)
        self.tokens_grow(before, {new[2]}, what)
        self.cluster.wait_healthy(new_primary)
        self.ok(f"{what}: {new_primary.name} is the primary, "
                f"{self.cluster.other(new_primary).name} streams from it again")

    def switchover(self, leader, candidate):
        return lambda: self.cluster.switchover(leader, candidate)

    def crash(self, member):
        def fault():
            pid = member.kill_postmaster()
            return f"kill -9 of {member.name}'s postmaster (pid {pid}): verified dead"
        return fault

    def run(self):
        self.setup()
        pg1, pg2 = self.cluster.members
        self.start_instances(self.cluster.dsn(), TTL, INSTANCES, HEALTH_BASE)
        self.failover("Patroni switchover", self.switchover(pg1, pg2), pg2)
        self.failover("Patroni failover after a postmaster crash", self.crash(pg2), pg1)
        self.platform.stop()
        primary = self.cluster.primary()
        self.fencing_checks(primary)
        self.platform = None
        self.cluster.stop()
        self.ok("Patroni, PostgreSQL and etcd stopped: processes gone, ports closed")


def main():
    run = PatroniScenario()
    return run.main(run.run)


if __name__ == "__main__":
    sys.exit(main())
