"""Helpers of abandoned_calls.sh's Python clients (on PYTHONPATH there): a
statement sent in pipeline mode, and waiting until a backend waits."""
import time


def send_piped(pg, sql: bytes, params=None) -> None:
    """Sends one statement and a sync on `pg` (in pipeline mode) without
    waiting for its result."""
    pg.send_query_params(sql, params)
    pg.pipeline_sync()
    pg.flush()


def wait_until_waiting(observer, pid: int, event_type: str, what: str) -> None:
    """Returns once backend `pid` waits on `event_type` (10 s at most)."""
    deadline = time.monotonic() + 10
    while observer.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                           (pid,)).fetchone()[0] != event_type:
        assert time.monotonic() < deadline, f"{what} never waited ({event_type})"
        time.sleep(0.02)
