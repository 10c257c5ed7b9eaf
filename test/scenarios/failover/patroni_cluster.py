"""A real Patroni cluster on loopback for the failover scenario and benchmark:
one etcd (Debian etcd-server, v3 API) and two PostgreSQL members, each run by
its own Patroni 3 (Debian patroni), started, checked and stopped here.

Patroni's dynamic configuration (bootstrap.dcs) is scaled down for a test:
ttl 10 s, loop_wait 1 s, retry_timeout 4 s (production defaults: 30/10/10), and
primary_start_timeout 0, so that a crashed primary's Patroni fails over to a
healthy replica instead of restarting PostgreSQL in place (the default, 300 s,
restarts it). The old primary rejoins as a replica (pg_rewind when needed).
The extension and the ledger are created by the post_bootstrap script."""
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request

import yaml

from ledger import SCHEMA_SQL
from pg import (BINDIR, OWNER, USER, Failure, Queries, chown_owner, pid_alive, port_open,
                postmaster_pid, stop_process, wait_for)

SCOPE = "singleton-lock-ha"
DCS = {"ttl": 10, "loop_wait": 1, "retry_timeout": 4, "maximum_lag_on_failover": 1048576,
       "primary_start_timeout": 0,
       "postgresql": {"use_pg_rewind": True, "use_slots": True,
                      "parameters": {"wal_log_hints": "on", "max_wal_senders": 5,
                                     "max_replication_slots": 5, "hot_standby": "on"}}}
HBA = ["local all all trust", "host all all 127.0.0.1/32 trust",
       "host replication all 127.0.0.1/32 trust"]


def run_as_owner_kwargs():
    return {"user": OWNER, "group": OWNER, "extra_groups": []} if OWNER else {}


class Etcd:
    def __init__(self, workdir, client_port, peer_port):
        self.dir = os.path.join(workdir, "etcd")
        self.client_port, self.peer_port = client_port, peer_port
        self.proc = None

    def endpoint(self):
        return f"127.0.0.1:{self.client_port}"

    def start(self):
        os.makedirs(self.dir)
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://{self.endpoint()}"
        with open(os.path.join(self.dir, "etcd.log"), "a") as log:
            self.proc = subprocess.Popen(
                ["etcd", "--name", "e1", "--data-dir", os.path.join(self.dir, "data"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"e1={peer}", "--initial-cluster-state", "new"],
                stdout=log, stderr=log)
        wait_for("etcd to be healthy", self.healthy, timeout=60, interval=0.2)

    def healthy(self):
        r = subprocess.run(["etcdctl", "--endpoints", self.endpoint(), "endpoint", "health"],
                           capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
        return r.returncode == 0 and "is healthy" in r.stdout + r.stderr

    def stop(self):
        stop_process(self.proc, timeout=20)
        if port_open(self.client_port):
            raise Failure("etcd still listens after it was stopped")


class Member(Queries):
    def __init__(self, cluster, name, pg_port, api_port):
        self.cluster, self.name = cluster, name
        self.port, self.api_port = pg_port, api_port
        self.dir = os.path.join(cluster.workdir, name)
        self.data = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "patroni.yml")
        self.proc = None

    def dsn(self):
        return f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres"

    def write_config(self):
        auth = {"username": USER, "password": "unused-trust-auth"}
        conf = {
            "scope": SCOPE, "name": self.name,
            "restapi": {"listen": f"127.0.0.1:{self.api_port}",
                        "connect_address": f"127.0.0.1:{self.api_port}"},
            "etcd3": {"hosts": [self.cluster.etcd.endpoint()]},
            "bootstrap": {"dcs": DCS, "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
                          "pg_hba": HBA, "post_bootstrap": self.cluster.post_bootstrap},
            "postgresql": {
                "listen": f"127.0.0.1:{self.port}", "connect_address": f"127.0.0.1:{self.port}",
                "data_dir": self.data, "bin_dir": BINDIR,
                "pgpass": os.path.join(self.dir, "pgpass"), "pg_hba": HBA,
                "authentication": {"superuser": auth, "replication": auth},
                "parameters": {"unix_socket_directories": self.dir, "tcp_keepalives_idle": 10,
                               "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}},
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }
        os.makedirs(self.dir)
        with open(self.config, "w") as f:
            yaml.safe_dump(conf, f)
        chown_owner(self.dir)
        chown_owner(self.config)

    def start(self):
        with open(os.path.join(self.dir, "patroni.log"), "a") as log:
            self.proc = subprocess.Popen(["patroni", self.config], stdout=log, stderr=log,
                                         cwd=self.dir, env={**os.environ, "HOME": self.dir},
                                         **run_as_owner_kwargs())

    def api(self, path):
        """(status, parsed JSON or None) of a GET on the member's REST API."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}", timeout=3) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except (OSError, ValueError):
            return None, None

    def is_primary(self):
        return self.api("/primary")[0] == 200

    def is_streaming_replica(self):
        return self.api("/replica")[0] == 200

    def kill_postmaster(self):
        """kill -9 of the postmaster (not of Patroni), verified dead."""
        pid = postmaster_pid(self.data)
        if not pid or not pid_alive(pid):
            raise Failure(f"{self.name}: no running postmaster to kill")
        os.kill(pid, signal.SIGKILL)
        wait_for(f"{self.name}'s postmaster {pid} to die", lambda: not pid_alive(pid), timeout=10)
        return pid

    def stop(self):
        """Stops Patroni (it stops PostgreSQL), verified; PostgreSQL too if Patroni did not."""
        pid = postmaster_pid(self.data)
        stop_process(self.proc, timeout=60)
        if pid and pid_alive(pid):
            prefix = ["runuser", "-u", OWNER, "--"] if OWNER else []
            subprocess.run(prefix + [f"{BINDIR}/pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                                     "stop"], capture_output=True)
            wait_for(f"{self.name}'s postmaster to exit", lambda: not pid_alive(pid), timeout=30)
        if port_open(self.port) or port_open(self.api_port):
            raise Failure(f"{self.name}: still listening after it was stopped")


class PatroniCluster:
    def __init__(self, workdir, pg_ports, api_ports, etcd_ports):
        self.workdir = workdir
        self.etcd = Etcd(workdir, *etcd_ports)
        self.post_bootstrap = self._write_post_bootstrap()
        self.members = [Member(self, f"pg{i + 1}", pg_ports[i], api_ports[i]) for i in range(2)]

    def _write_post_bootstrap(self):
        sql = os.path.join(self.workdir, "post_bootstrap.sql")
        with open(sql, "w") as f:
            f.write("CREATE EXTENSION singleton_lock;\n" + SCHEMA_SQL)
        script = os.path.join(self.workdir, "post_bootstrap.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n# Patroni calls it once, on the new primary, with a conninfo.\n"
                    f"exec psql -X -q -v ON_ERROR_STOP=1 -d \"$1\" -f '{sql}'\n")
        os.chmod(script, 0o755)
        os.chmod(sql, 0o644)
        return script

    def dsn(self, attrs="read-write"):
        ports = ",".join(str(m.port) for m in self.members)
        return (f"host=127.0.0.1,127.0.0.1 port={ports} user={USER} dbname=postgres "
                f"target_session_attrs={attrs}")

    def start(self):
        """etcd, then the first member (it bootstraps), then the second (a replica)."""
        self.etcd.start()
        first, second = self.members
        for m in self.members:
            m.write_config()
        first.start()
        wait_for("pg1 to bootstrap and lead", first.is_primary, timeout=120, interval=0.2)
        second.start()
        self.wait_healthy(first)
        return first, second

    def primary(self):
        found = [m for m in self.members if m.is_primary()]
        return found[0] if len(found) == 1 else None

    def other(self, member):
        return next(m for m in self.members if m is not member)

    def wait_healthy(self, primary, timeout=120):
        """primary leads, the other member streams from it and Patroni knows its
        position (else it is no switchover or failover candidate yet)."""
        replica = self.other(primary)
        wait_for(f"{primary.name} to be the primary", primary.is_primary, timeout=timeout, interval=0.2)
        wait_for(f"{replica.name} to stream as a replica", lambda: replica.is_streaming_replica()
                 and primary.value("SELECT count(*) FROM pg_stat_replication WHERE state = "
                                   "'streaming' AND application_name = %s", (replica.name,)) == 1
                 and isinstance(self.members_json().get(replica.name, {}).get("Lag in MB"), int),
                 timeout=timeout, interval=0.2)

    def members_json(self):
        r = subprocess.run(["patronictl", "-c", self.members[0].config, "list", "-f", "json"],
                           capture_output=True, text=True, **run_as_owner_kwargs())
        try:
            return {m["Member"]: m for m in json.loads(r.stdout)}
        except (ValueError, KeyError, TypeError):
            return {}

    def switchover(self, leader, candidate):
        r = subprocess.run(["patronictl", "-c", leader.config, "switchover", "--leader", leader.name,
                            "--candidate", candidate.name, "--force"],
                           capture_output=True, text=True, **run_as_owner_kwargs())
        if r.returncode != 0:
            raise Failure(f"patronictl switchover failed: {r.stdout}{r.stderr}")
        said = [l for l in r.stdout.splitlines() if "witched over" in l]
        if not said:
            raise Failure(f"patronictl switchover did not report a switchover: {r.stdout}")
        return "patronictl: " + said[-1].strip()

    def list(self):
        r = subprocess.run(["patronictl", "-c", self.members[0].config, "list"],
                           capture_output=True, text=True, **run_as_owner_kwargs())
        return r.stdout

    def stop(self):
        errors = []
        for m in self.members:
            try:
                m.stop()
            except Failure as e:
                errors.append(str(e))
        try:
            self.etcd.stop()
        except Failure as e:
            errors.append(str(e))
        if errors:
            raise Failure("; ".join(errors))
