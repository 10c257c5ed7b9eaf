"""singleton_lock.within (the library's wait_for): a cancellation of its
caller always wins, also when the awaited result came in meanwhile (before
Python 3.12, asyncio.wait_for returned that result and lost the cancel).
Pure asyncio, no server: the module is loaded from its file, so that this
also runs on Pythons without psycopg, e.g. `python3.9 test/python/test_within.py`."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "singleton_lock_within", Path(__file__).resolve().parents[2] / "python/singleton_lock/within.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
within = _module.within

SPINS = range(12)  # loop iterations between the result's arrival and the cancel


async def cancel_after_result(spins: int):
    """(cancel accepted, outcome, discarded): the awaited future gets its
    result, `spins` loop iterations pass, then the caller is cancelled."""
    fut = asyncio.get_running_loop().create_future()
    discarded = []
    caller = asyncio.ensure_future(within(fut, 10, discarded.append))
    for _ in range(3):  # the caller now waits inside within()
        await asyncio.sleep(0)
    fut.set_result("reply")
    for _ in range(spins):
        await asyncio.sleep(0)
    accepted = caller.cancel()
    try:
        outcome = await caller
    except asyncio.CancelledError:
        outcome = "cancelled"
    return accepted, outcome, discarded


def test_a_cancel_accepted_after_the_result_arrived_is_never_lost():
    for spins in SPINS:
        accepted, outcome, discarded = asyncio.run(cancel_after_result(spins))
        if accepted:
            assert outcome == "cancelled", f"cancel lost after {spins} spins: got {outcome!r}"
            assert discarded == ["reply"], f"after {spins} spins the result was not discarded"
        else:  # the caller had finished already: the result is its own
            assert outcome == "reply" and not discarded


def test_results_timeouts_errors_and_plain_cancels_behave_as_wait_for():
    async def scenario():
        assert await within(asyncio.sleep(0, "ok"), 1) == "ok"
        assert await within(asyncio.sleep(0, "no limit"), None) == "no limit"
        slow = asyncio.ensure_future(asyncio.sleep(10))
        try:
            await within(slow, 0.05)
            raise AssertionError("no timeout")
        except asyncio.TimeoutError:
            assert slow.cancelled(), "the timed-out awaitable must be cancelled"

        async def fails():
            raise ValueError("boom")
        try:
            await within(fails(), 1)
            raise AssertionError("no error")
        except ValueError as error:
            assert str(error) == "boom"
        pending = asyncio.ensure_future(asyncio.sleep(10))
        caller = asyncio.ensure_future(within(pending, 10))
        await asyncio.sleep(0.01)
        caller.cancel()
        try:
            await caller
            raise AssertionError("the cancel was lost")
        except asyncio.CancelledError:
            assert pending.cancelled(), "a cancelled caller must cancel what it waited for"
    asyncio.run(scenario())


if __name__ == "__main__":
    test_a_cancel_accepted_after_the_result_arrived_is_never_lost()
    test_results_timeouts_errors_and_plain_cancels_behave_as_wait_for()
    print(f"2 passed (Python {sys.version.split()[0]})")
