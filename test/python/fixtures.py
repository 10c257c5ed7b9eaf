"""pytest fixtures and hooks for the library and example tests (a real server
from the PG* environment: test/run_all.sh starts one; the extension is created
here). Star-imported by test/python/conftest.py and test/node/conftest.py."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import harness

__all__ = ["extension", "spawn", "pytest_pyfunc_call", "pytest_runtest_makereport"]


@pytest.fixture(scope="session")
def extension() -> None:
    harness.ensure_extension()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):  # type: ignore[no-untyped-def]
    """`async def` tests run on a fresh event loop (no pytest-asyncio in Debian's set)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.failed_call = report.failed


@pytest.fixture
def spawn(request: pytest.FixtureRequest,
          tmp_path: Path) -> Iterator[Callable[..., harness.Instance]]:
    """spawn(command, label) -> Instance; every instance is killed at the end
    and its log printed when the test failed."""
    started: List[harness.Instance] = []

    def start(command: List[str], label: str) -> harness.Instance:
        instance = harness.Instance(command, label, tmp_path)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()
        if getattr(request.node, "failed_call", True):
            print(f"--- {instance.label} (pid {instance.pid}) stderr:\n{instance.stderr()}")
