"""When did a server start accepting writes? A thread that tries one INSERT every
2 ms (reconnecting when needed) and keeps the server's clock_timestamp() of the
first one that commits: the moment a promoted standby (or a Patroni member)
became a writable primary, on the same clock as the ledger's rows and the
workers' events (CLOCK_REALTIME of this machine)."""
import threading
import time

import psycopg


class WriteProbe:
    def __init__(self, dsn):
        self.dsn = dsn
        self.accepted_ns = None
        self.attempts = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        self._thread.join(timeout=10)

    def wait(self, timeout):
        self._thread.join(timeout=timeout)
        return self.accepted_ns

    def _run(self):
        conn = None
        while not self._stop and self.accepted_ns is None:
            self.attempts += 1
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                row = conn.execute("INSERT INTO ha_probe DEFAULT VALUES "
                                   "RETURNING (extract(epoch FROM at) * 1e9)::bigint").fetchone()
                self.accepted_ns = row[0]
            except psycopg.Error:
                if conn is not None and conn.broken:
                    conn = None
                time.sleep(0.002)
        if conn is not None:
            conn.close()
