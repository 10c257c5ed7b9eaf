"""asyncio.wait_for whose caller's cancellation always wins, on every Python.

Before Python 3.12, wait_for returns the result of an awaitable that finished
just as its caller was being cancelled, and the cancellation is lost. For us
that meant a standby stopped by SIGTERM at the moment a release handed it the
lease went on to lead and never stopped. So the timeout is kept here with
asyncio.wait, which never swallows its caller's cancellation, and a result
that arrives for a cancelled caller is handed to `discard` instead.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Optional, TypeVar

T = TypeVar("T")


def cancels_requested(task: Optional["asyncio.Task[Any]"]) -> int:
    """How many cancel requests `task` has had (Python >= 3.11; else 0)."""
    counter = getattr(task, "cancelling", None)
    return int(counter()) if counter is not None else 0


async def within(awaitable: Awaitable[T], timeout: Optional[float],
                 discard: Optional[Callable[[T], None]] = None) -> T:
    """asyncio.wait_for(awaitable, timeout), except that when the caller is
    cancelled, CancelledError is raised even if the result came in (which is
    handed to `discard` first, e.g. to close a connection nobody will use)."""
    inner = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({inner}, timeout=timeout)
    except asyncio.CancelledError:
        await _stop(inner, discard)
        raise
    if not done:
        await _stop(inner, discard)
        raise asyncio.TimeoutError()
    return inner.result()


async def _stop(inner: "asyncio.Future[T]", discard: Optional[Callable[[T], None]]) -> None:
    """Cancel `inner` and wait until it has ended (as wait_for does); a result
    it produced anyway goes to `discard`."""
    if not inner.done():
        inner.cancel()
        await asyncio.wait({inner})
    if inner.cancelled():
        return
    if inner.exception() is None:
        if discard is not None:
            discard(inner.result())
