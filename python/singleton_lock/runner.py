"""run_as_leader: the whole life of a singleton service in one call."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Awaitable, Callable, List, Optional, Sequence, TypeVar

from .elector import AsyncElector
from .errors import LeaseLost, SteppedDown
from .lease import Lease

log = logging.getLogger("singleton_lock")
T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def run_as_leader(name: str, main: Callable[[Lease], Awaitable[T]], *,
                        rejoin: bool = True, step_down: bool = True,
                        stop_signals: Sequence[signal.Signals] = STOP_SIGNALS,
                        **options: Any) -> Optional[T]:
    """Wait as a healthy standby for as long as it takes, then run
    `main(lease)` as leader. On loss `main` is cancelled; with rejoin=True we
    go back to waiting (else LeaseLost is raised). When a waiter of higher
    priority asks for the lease (step_down=True), `main` is cancelled and the
    lease handed over; we then wait as a standby too (rejoin=False: SteppedDown,
    a LeaseLost, is raised). A stop signal (SIGTERM, SIGINT) cancels whatever
    runs, releases the lease and returns None; another one while `main` is
    still stopping cancels it again (the lease stays held until it has
    stopped). When `main` returns, the lease is released and its result
    returned. Options: those of AsyncElector."""
    current = asyncio.current_task()
    if current is None:
        raise RuntimeError("run_as_leader must run inside an asyncio task")
    task = current
    loop = asyncio.get_running_loop()
    stopping: List[signal.Signals] = []

    electors: List[AsyncElector] = []

    def stop(signum: signal.Signals) -> None:
        signame = signal.Signals(signum).name
        if not stopping:
            log.info("lease %r: %s: stopping", name, signame)
            stopping.append(signum)
            task.cancel()
        elif electors and electors[0]._cancel_work_again():
            # A second Ctrl-C: `main` ignored (or is slow to handle) the first.
            log.warning("lease %r: %s again: cancelling main again (the lease stays held "
                        "until it has stopped)", name, signame)

    for signum in stop_signals:
        loop.add_signal_handler(signum, stop, signum)
    try:
        async with AsyncElector(name, **options) as elector:
            electors.append(elector)
            while True:
                try:
                    return await elector.run(main, step_down=step_down)
                except SteppedDown as stepped:
                    if not rejoin:
                        raise
                    log.info("lease %r: %s; waiting as a standby again", name, stepped)
                except LeaseLost as lost:
                    if not rejoin:
                        raise
                    log.warning("lease %r: %s; waiting as a standby again", name, lost)
    except asyncio.CancelledError:
        if stopping:
            return None
        raise
    finally:
        for signum in stop_signals:
            loop.remove_signal_handler(signum)
