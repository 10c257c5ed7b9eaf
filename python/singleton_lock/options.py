"""The elector's options, validated once, with the derived timing and DSN."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .conninfo_check import ConninfoRefused, check_fixed_values
from .durations import DurationLike, interval_literal, parse_duration, parse_wait
from .errors import UsageError
from .holder import check_text, default_holder_id
from .link import build_conninfo
from .policy import Timing, connection_defaults, make_timing

INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class Options:
    name: str
    holder: str
    timing: Timing
    wait: Optional[float]  # seconds; None: forever
    conninfo: str  # the DSN with our connection defaults
    schema: Optional[str]
    listen: Optional[bool]  # None: LISTEN unless singleton_lock.bind_session is off
    backoff_initial: float
    backoff_max: float
    failover_backoff_max: float  # reconnect delays while a failover looks under way
    failover_window: float  # ... and for this long after a working connection broke
    priority: int  # among waiters the highest gets the lease; higher preempts (1.1)

    @property
    def ttl_literal(self) -> str:
        return interval_literal(self.timing.ttl)


def make_options(name: str, *, dsn: str = "", ttl: DurationLike = 10.0,
                 grace: Optional[DurationLike] = None, holder: Optional[str] = None,
                 wait: Optional[DurationLike] = None, schema: Optional[str] = None,
                 listen: Optional[bool] = None, backoff_initial: DurationLike = 0.1,
                 backoff_max: DurationLike = 5.0, failover_backoff_max: DurationLike = 0.5,
                 failover_window: DurationLike = 60.0, priority: int = 0) -> Options:
    """Raises UsageError with a message naming the bad option."""
    check_text(name, "name")
    timing = make_timing(parse_duration(ttl, "ttl"),
                         None if grace is None else parse_duration(grace, "grace"))
    holder = default_holder_id() if holder is None else check_text(holder, "holder")
    if schema is not None:
        check_text(schema, "schema")
    if not isinstance(dsn, str):
        raise UsageError(f"dsn must be a string, got {type(dsn).__name__}")
    try:
        check_fixed_values(conninfo_to_dict(dsn), os.environ)
        conninfo = build_conninfo(dsn, connection_defaults(timing), dict(os.environ))
    except (psycopg.ProgrammingError, ConninfoRefused) as error:
        raise UsageError(f"invalid dsn: {error}") from None
    return Options(
        name=name, holder=holder, timing=timing, wait=parse_wait(wait), conninfo=conninfo,
        schema=schema, listen=listen,
        backoff_initial=parse_duration(backoff_initial, "backoff_initial"),
        backoff_max=parse_duration(backoff_max, "backoff_max"),
        failover_backoff_max=parse_duration(failover_backoff_max, "failover_backoff_max"),
        failover_window=parse_duration(failover_window, "failover_window"),
        priority=check_priority(priority),
    )


def check_priority(value: object) -> int:
    """An SQL integer; UsageError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"priority must be an integer, got {value!r}")
    if not INT4_MIN <= value <= INT4_MAX:
        raise UsageError(f"priority must be between {INT4_MIN} and {INT4_MAX} (got {value})")
    return value
