"""`singleton-lock run` instances kept running by a small "platform" (one slot
per instance, restarted when it exits, as an orchestrator would), each wrapping
ledger_worker as its COMMAND; and what their COMMANDs did (the events file)."""
import os
import signal
import subprocess
import threading
import time
import urllib.request

from pg import pid_alive


def healthz(port):
    """(status, body) of GET /healthz on 127.0.0.1:port, (None, error) when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()
    except OSError as e:
        return None, str(e)


class Slot:
    def __init__(self, platform, index):
        self.platform, self.index = platform, index
        self.name = f"slot{index}"
        self.health_port = platform.health_base + index
        self.log = os.path.join(platform.workdir, f"{self.name}.log")
        self.proc = None
        self.exits = []  # (time.time_ns(), returncode) of each run that ended
        self.generation = 0
        self.thread = threading.Thread(target=self._keep_running, daemon=True)

    def _command(self):
        p = self.platform
        return [p.cli, "run", "--name", p.lease, "--ttl", p.ttl, "--dsn", p.dsn,
                "--holder", f"{self.name}-{self.generation}-{os.urandom(3).hex()}",
                "--health-addr", f"127.0.0.1:{self.health_port}",
                "--", p.worker, p.dsn, self.name, p.events, p.journal]

    def _keep_running(self):
        while not self.platform.stopping:
            self.generation += 1
            with open(self.log, "a") as log:
                self.proc = subprocess.Popen(self._command(), stdout=log, stderr=log)
            code = self.proc.wait()
            self.exits.append((time.time_ns(), code))
            time.sleep(0.1)

    def healthz(self):
        return healthz(self.health_port)

    def log_lines(self):
        with open(self.log) as f:
            return f.read().splitlines()


class Platform:
    def __init__(self, cli, worker, dsn, lease, ttl, workdir, count, health_base):
        self.cli, self.worker, self.dsn, self.lease, self.ttl = cli, worker, dsn, lease, ttl
        self.workdir, self.health_base = workdir, health_base
        self.events = os.path.join(workdir, "events")
        self.journal = os.path.join(workdir, "journal")
        self.stopping = False
        self.slots = [Slot(self, i + 1) for i in range(count)]

    def start(self):
        for s in self.slots:
            s.thread.start()

    def stop(self):
        """SIGTERM to every instance (a leader forwards it, releases and exits)."""
        self.stopping = True
        for s in self.slots:
            if s.proc and s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
        for s in self.slots:
            s.thread.join(timeout=30)
            if s.proc and s.proc.poll() is None:
                s.proc.kill()

    def slot(self, name):
        return next(s for s in self.slots if s.name == name)

    def events_list(self):
        """[(kind, instance, pid, ns, token)] in file order."""
        out = []
        if os.path.exists(self.events):
            with open(self.events) as f:
                for line in f:
                    kind, inst, pid, ns, tok = line.split()
                    out.append((kind, inst, int(pid), int(ns), int(tok)))
        return out

    def running_commands(self):
        """{pid: (instance, token, started_ns)} of COMMANDs that are alive now."""
        started = {}
        for kind, inst, pid, ns, tok in self.events_list():
            if kind == "start":
                started[pid] = (inst, tok, ns)
            else:
                started.pop(pid, None)
        return {pid: v for pid, v in started.items() if pid_alive(pid)}

    def command_stop_ns(self, pid):
        """When COMMAND `pid` stopped: its own stop event, else None."""
        for kind, _, p, ns, _ in self.events_list():
            if kind == "stop" and p == pid:
                return ns
        return None
