"""Throwaway PostgreSQL servers on loopback for the failover scenarios: a primary,
a streaming standby made with pg_basebackup, crash (immediate stop), promotion,
each state change verified. As root, servers run as the `postgres` user."""
import os
import shutil
import signal
import socket
import subprocess
import time

import psycopg

BINDIR = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                        check=True).stdout.strip()
OWNER = "postgres" if os.geteuid() == 0 else None
USER = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")


class Failure(Exception):
    """A scenario check failed."""


def as_owner(args, **kw):
    if OWNER:
        args = ["runuser", "-u", OWNER, "--"] + args
    return subprocess.run(args, capture_output=True, text=True, **kw)


def chown_owner(path):
    if OWNER:
        shutil.chown(path, OWNER, OWNER)


def wait_for(what, predicate, timeout=60.0, interval=0.02):
    """Polls predicate() until it returns something truthy; Failure after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop_process(proc, timeout):
    """SIGTERM to a Popen child, SIGKILL if it is still there after timeout; reaped."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def stop_pidfile(pidfile, what, port):
    """SIGTERM to the daemon in pidfile (SIGKILL after 20 s), verified gone and
    its port closed; Failure otherwise."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        pid = None
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        try:
            wait_for(f"{what} (pid {pid}) to exit on SIGTERM", lambda: not pid_alive(pid), 20)
        except Failure:
            os.kill(pid, signal.SIGKILL)
            wait_for(f"{what} (pid {pid}) to die after SIGKILL", lambda: not pid_alive(pid), 10)
    if port_open(port):
        raise Failure(f"{what} still listens on {port} after it was stopped")


def postmaster_pid(data_dir):
    """The pid in data_dir's postmaster.pid; None when there is none."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            return int(f.readline())
    except (FileNotFoundError, ValueError):
        return None


BASE_SETTINGS = """
listen_addresses = '127.0.0.1'
max_connections = 100
wal_log_hints = on
tcp_keepalives_idle = 10
tcp_keepalives_interval = 5
tcp_keepalives_count = 3
log_min_messages = warning
log_line_prefix = '%m [%p] '
"""


class Queries:
    """Short sessions over self.dsn() (autocommit)."""

    def connect(self, **kw):
        return psycopg.connect(self.dsn(), autocommit=True, **kw)

    def query(self, sql, params=None, options=None):
        """Rows of one statement in a fresh session (options: PGOPTIONS-style)."""
        kw = {"options": options} if options else {}
        with self.connect(connect_timeout=5, **kw) as c:
            cur = c.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def value(self, sql, params=None, options=None):
        rows = self.query(sql, params, options)
        return rows[0][0] if rows else None


class Server(Queries):
    def __init__(self, name, port, workdir):
        self.name, self.port = name, port
        self.dir = os.path.join(workdir, name)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")

    def dsn(self):
        return f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres"

    def _prepare_dir(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        chown_owner(self.dir)

    def _append_conf(self, text):
        r = as_owner(["sh", "-c", f"cat >> '{self.data}/postgresql.conf'"], input=text)
        if r.returncode:
            raise Failure(r.stderr)

    def initdb(self, settings=""):
        self._prepare_dir()
        r = as_owner([f"{BINDIR}/initdb", "-D", self.data, "-A", "trust", "-U", USER,
                      "-E", "UTF8", "--locale=C.UTF-8"])
        if r.returncode:
            raise Failure(f"initdb {self.name}: {r.stderr}")
        self._append_conf(BASE_SETTINGS + f"port = {self.port}\n"
                          f"unix_socket_directories = '{self.dir}'\n" + settings)

    def basebackup_from(self, primary):
        """A hot standby of `primary` (pg_basebackup -R: streaming replication)."""
        self._prepare_dir()
        r = as_owner([f"{BINDIR}/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
                      "-U", USER, "-D", self.data, "-R", "-X", "stream", "-c", "fast"])
        if r.returncode:
            raise Failure(f"pg_basebackup {self.name}: {r.stderr}")
        self._append_conf(f"port = {self.port}\nunix_socket_directories = '{self.dir}'\n")

    def start(self):
        r = as_owner([f"{BINDIR}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                      "start"])
        if r.returncode:
            raise Failure(f"start {self.name}: {r.stdout}{r.stderr}{self.log_tail()}")
        wait_for(f"{self.name} to accept connections", self.accepts_connections)

    def stop(self, mode="fast"):
        as_owner([f"{BINDIR}/pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"])

    def crash(self):
        """pg_ctl stop -m immediate (every process gets SIGQUIT: no shutdown
        checkpoint, clients' connections break), then verifies it is down."""
        pid = postmaster_pid(self.data)
        r = as_owner([f"{BINDIR}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        if r.returncode:
            raise Failure(f"immediate stop of {self.name}: {r.stdout}{r.stderr}")
        self.verify_down(pid)

    def verify_down(self, pid):
        # (pg_ctl -w returns when postmaster.pid is gone, a moment before the process)
        if pid:
            wait_for(f"{self.name}'s postmaster {pid} to exit", lambda: not pid_alive(pid),
                     timeout=30)
        if as_owner([f"{BINDIR}/pg_ctl", "-D", self.data, "status"]).returncode != 3:
            raise Failure(f"{self.name}: pg_ctl status does not say it is down")
        if port_open(self.port):
            raise Failure(f"{self.name}: port {self.port} still accepts connections")

    def promote(self):
        r = as_owner([f"{BINDIR}/pg_ctl", "-D", self.data, "-w", "promote"])
        if r.returncode:
            raise Failure(f"promote {self.name}: {r.stdout}{r.stderr}")

    def accepts_connections(self):
        try:
            with self.connect(connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def in_recovery(self):
        return self.value("SELECT pg_is_in_recovery()")

    def log_tail(self, lines=20):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""
