"""asyncio.wait_for whose caller's cancellation always wins.

Before Python 3.12, wait_for returns the result of an awaitable that finished
just as its caller was being cancelled, and the cancellation is lost. For us
that meant a standby stopped by SIGTERM at the moment a release handed it the
lease went on to lead and never stopped. Python 3.11 counts cancel requests
(Task.cancelling), so a lost one can be noticed and raised again.
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
    """asyncio.wait_for(awaitable, timeout); if the caller was cancelled
    meanwhile, CancelledError even when the result came in (handed to
    `discard` first, e.g. to close a connection nobody will use)."""
    task = asyncio.current_task()
    before = cancels_requested(task)
    result = await asyncio.wait_for(awaitable, timeout)
    if cancels_requested(task) > before:
        if discard is not None:
            discard(result)
        raise asyncio.CancelledError()
    return result
