"""Every timing decision of the elector, pure: no I/O, no clock reads, no
global randomness. Callers pass the time (time.monotonic() seconds) and a
source of randomness, so the rules are unit-tested with a fake clock.
The same rules as the C++ client (client/src/policy.cpp)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

from .durations import format_duration
from .errors import DatabaseUnavailableError, ReadOnlyServerError, UsageError

MIN_TTL = 0.1


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))


@dataclass(frozen=True)
class Timing:
    ttl: float
    grace: float  # time the application gets to stop its work after a loss
    heartbeat_interval: float  # ttl/3
    safety_margin: float  # min(ttl/10, 1s): scheduling, clock rates
    heartbeat_retry: float  # after a failed (but not refused) heartbeat
    wait_slice_max: float  # longest server-side wait of one acquire call
    reply_slack: float  # a request is given up this long after it could have replied
    connect_timeout: float  # bound on establishing a connection
    release_timeout: float  # how long a release may take before giving up on it


def make_timing(ttl: float, grace: Optional[float] = None) -> Timing:
    """Validates and derives. UsageError: ttl < 100ms, grace < 0, grace >= ttl/2."""
    if ttl < MIN_TTL:
        raise UsageError(
            f"ttl must be at least {format_duration(MIN_TTL)} (got {format_duration(ttl)})"
        )
    grace = ttl / 4 if grace is None else grace
    if grace < 0:
        raise UsageError("grace must not be negative")
    if 2 * grace >= ttl:
        raise UsageError(
            f"grace ({format_duration(grace)}) must be less than ttl/2 (ttl {format_duration(ttl)})"
        )
    return Timing(
        ttl=ttl,
        grace=grace,
        heartbeat_interval=ttl / 3,
        safety_margin=min(ttl / 10, 1.0),
        heartbeat_retry=_clamp(ttl / 20, 0.02, 1.0),
        wait_slice_max=1.0,
        reply_slack=_clamp(ttl / 2, 1.0, 10.0),
        connect_timeout=_clamp(ttl / 2, 2.0, 30.0),
        release_timeout=_clamp(ttl / 2, 0.5, 5.0),
    )


class LeaseTimer:
    """The leader's view of its lease, counted from when the last successful
    acquire/heartbeat was SENT: the server extended the lease after that, so
    sent + ttl is never later than the server's expiry."""

    def __init__(self, timing: Timing) -> None:
        self._timing = timing
        self._sent: Optional[float] = None

    def confirmed(self, sent: float) -> None:
        if self._sent is None or sent > self._sent:
            self._sent = sent

    @property
    def valid(self) -> bool:
        return self._sent is not None

    @property
    def deadline(self) -> float:
        return (self._sent if self._sent is not None else float("-inf")) + self._timing.ttl

    @property
    def step_down_at(self) -> float:
        """Step down when the time left falls to grace + safety margin, so the
        application's grace still ends before the server could hand the lease on."""
        return self.deadline - self._timing.grace - self._timing.safety_margin

    def must_step_down(self, now: float) -> bool:
        return self._sent is None or now >= self.step_down_at

    def time_left(self, now: float) -> float:
        return max(0.0, self.deadline - now) if self._sent is not None else 0.0

    @property
    def next_heartbeat_at(self) -> float:
        return self.deadline - self._timing.ttl + self._timing.heartbeat_interval  # sent + ttl/3


def lead_before_confirmation(timing: Timing, acquire_sent: float, now: float) -> bool:
    """After an acquire that waited in the server, the lease is confirmed with an
    immediate heartbeat (a wait can outlast the TTL). Lead before that reply only
    if the lease counted from the acquire's send time leaves the confirming
    heartbeat a full heartbeat interval before the step-down point."""
    timer = LeaseTimer(timing)
    timer.confirmed(acquire_sent)
    return now + timing.heartbeat_interval < timer.step_down_at


class Backoff:
    """Capped exponential backoff with "equal jitter": the n-th delay is uniform
    in [base/2, base], base = min(cap, initial * 2**n). random() is in [0, 1)."""

    def __init__(self, initial: float, maximum: float, random: Callable[[], float]) -> None:
        self._initial = max(initial, 0.001)
        self._max = max(maximum, self._initial)
        self._random = random
        self.attempts = 0

    def next(self, cap: Optional[float] = None) -> float:
        """This delay, capped at `cap` (default: the maximum; never below initial)."""
        cap = max(self._max if cap is None else cap, self._initial)
        base: float = min(cap, self._initial * 2.0 ** min(self.attempts, 62))
        self.attempts = min(self.attempts + 1, 64)
        r = _clamp(float(self._random()), 0.0, 1.0)
        return base / 2 + r * (base - base / 2)

    def reset(self) -> None:
        self.attempts = 0


class Reconnect:
    """Reconnect pacing, shaped so that a standby finds a new primary within
    `failover_max` of it accepting connections (client/src/policy.hpp):
    - the first retry after a working connection broke goes out at once (the
      DSN's next host may be the new primary already, a restarted server may be
      back); at most once per `maximum`, so a connection that keeps breaking
      right after its first reply cannot turn into a busy loop;
    - then exponential backoff from `initial`, capped at `failover_max` while a
      failover looks under way: a server answered but none takes writes
      (primary_missing), or a working connection broke less than
      `failover_window` ago (an address with nothing behind it yet: a virtual
      IP, a proxy); otherwise (an outage) at `maximum`."""

    def __init__(self, *, initial: float, maximum: float, failover_max: float,
                 failover_window: float, random: Callable[[], float]) -> None:
        self._backoff = Backoff(initial, maximum, random)
        self._max = max(maximum, initial)
        self._failover_max = failover_max
        self._failover_window = failover_window
        self._working = False
        self._lost_at: Optional[float] = None
        self._immediate_at: Optional[float] = None

    @property
    def was_working(self) -> bool:
        """A request succeeded on the last connection, and it was not closed by us."""
        return self._working

    def working(self) -> None:
        """A request succeeded: the connection works; its loss is a failover sign."""
        self._working = True
        self._backoff.reset()

    def stopped(self) -> None:
        """We closed the connection ourselves (release, refused lease, stop):
        its end says nothing about the servers."""
        self._working = False
        self._backoff.reset()

    def next(self, now: float, primary_missing: bool) -> float:
        """Delay before the next connection attempt, after a failure at `now`."""
        if self._working:
            self._working = False
            self._lost_at = now
            if self._immediate_at is None or now - self._immediate_at >= self._max:
                self._immediate_at = now
                return 0.0
        failover = primary_missing or (self._lost_at is not None
                                       and now - self._lost_at < self._failover_window)
        return self._backoff.next(self._failover_max if failover else self._max)


# A failed connection attempt has no SQLSTATE: these are libpq's own
# target_session_attrs refusals and the server's start-up/shutdown refusals
# (English unless the server or libpq use another language; the failover
# window covers that case).
_PRIMARY_MISSING_SIGNS = (
    "session is read-only",
    "server is in hot standby mode",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "the database system is shutting down",
)


def primary_missing(error: BaseException) -> bool:
    """True when the error shows that a server answered but cannot take writes
    (a standby: SQLSTATE 25006 or libpq's target_session_attrs refusal; a server
    starting up, in recovery or shutting down): a failover is under way."""
    if isinstance(error, ReadOnlyServerError):
        return True
    if not isinstance(error, DatabaseUnavailableError):
        return False
    text = str(error)
    return any(sign in text for sign in _PRIMARY_MISSING_SIGNS)


def wait_slice(timing: Timing, now: float, wait_until: Optional[float]) -> float:
    """How long the next acquire may wait inside the server (0: try once)."""
    if wait_until is None:
        return timing.wait_slice_max
    if now >= wait_until:
        return 0.0
    return min(wait_until - now, timing.wait_slice_max)


def within_statement_timeout(wait: float, statement_timeout: float) -> float:
    """The longest server-side wait (an acquire's slice, a watch) that the
    session's statement_timeout lets end on its own, with room for the rest of
    the statement: a role whose statement_timeout is shorter than our waits
    would otherwise see each of them cancelled (57014). 0 (off): `wait`."""
    if statement_timeout <= 0:
        return wait
    headroom = max(statement_timeout / 5, 0.05)
    longest = statement_timeout - headroom if statement_timeout > 2 * headroom \
        else statement_timeout / 2
    return min(wait, max(longest, 0.001))


def wait_ran_out(now: float, wait_until: Optional[float]) -> bool:
    return wait_until is not None and now >= wait_until


def reply_deadline(timing: Timing, sent: float, server_wait: float) -> float:
    """When an in-flight request that may wait `server_wait` in the server is
    given up (it is then cancelled and its connection closed)."""
    return sent + server_wait + timing.reply_slack


def connection_defaults(timing: Timing) -> Dict[str, str]:
    """libpq parameters derived from the TTL, applied unless the DSN sets them:
    a standby notices a dead network path and retries. And client_encoding
    UTF8, as the other clients send names (a role's SQL_ASCII or LATIN1 could
    not carry every name)."""

    def secs(value: float) -> str:
        return str(max(1, int(value)))

    return {
        "connect_timeout": secs(timing.connect_timeout),
        "tcp_user_timeout": str(int(max(timing.ttl / 2, 1.0) * 1000)),
        "keepalives": "1",
        "keepalives_idle": secs(timing.ttl / 3),
        "keepalives_interval": secs(timing.ttl / 10),
        "keepalives_count": "3",
        "client_encoding": "UTF8",
    }
