"""Durations as the command line writes them ("250ms", "10s", "2m", "1h"),
as numbers of seconds, or as datetime.timedelta."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Optional, Union

from .errors import UsageError

DurationLike = Union[str, int, float, timedelta]

_PATTERN = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: DurationLike, what: str = "duration") -> float:
    """Seconds from "250ms"/"10s"/"2m"/"1h"/"1.5s", a number of seconds or a
    timedelta. Raises UsageError (naming `what`) on anything else."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise UsageError(f"{what}: expected a duration, got {value!r}")
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.fullmatch(value.strip())
        if not match:
            raise UsageError(
                f"{what}: invalid duration {value!r} (expected a number with a unit: "
                "250ms, 10s, 2m, 1h)"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise UsageError(f"{what}: expected a duration, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"{what}: must be a finite, non-negative duration (got {value!r})")
    return seconds


def parse_wait(value: Optional[DurationLike], what: str = "wait") -> Optional[float]:
    """Like parse_duration, but None or "forever" mean no limit (None)."""
    if value is None or value == "forever":
        return None
    return parse_duration(value, what)


def interval_literal(seconds: float) -> str:
    """A PostgreSQL interval literal, whole milliseconds: "10000 milliseconds"."""
    return f"{int(round(seconds * 1000))} milliseconds"


def format_duration(seconds: float) -> str:
    """The shortest exact form: "250ms", "10s", "2m", "1h", "1500ms"."""
    ms = int(round(seconds * 1000))
    if ms and ms % 3_600_000 == 0:
        return f"{ms // 3_600_000}h"
    if ms and ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"
