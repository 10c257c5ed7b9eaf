"""examples/node/worker.js against the real server: the same scenarios as the
Python bot's (shared in test/python/scenarios.py)."""

from __future__ import annotations

import subprocess

import pytest

from harness import WAIT, WORKER, tcp_dsn
from scenarios import (database_restart, strict_server_settings, three_copies_kill_and_term,
                       two_copies_handover)

pytestmark = pytest.mark.usefixtures("extension")


def test_two_copies_sigterm_hands_over(spawn):
    two_copies_handover(spawn, WORKER, "node")


def test_three_copies_one_writer_sigkill_and_sigterm(spawn):
    three_copies_kill_and_term(spawn, WORKER, "node")


def test_strict_server_settings_keep_the_leader(spawn):
    strict_server_settings(spawn, WORKER, "node")


def test_database_restart_is_survived(spawn):
    database_restart(spawn, WORKER, "node")


def test_bad_input_gets_clear_errors():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(WORKER + list(args), capture_output=True, text=True, timeout=WAIT)

    cases = [
        (("--name", "x", "--ledger", "t"), "--dsn is required"),
        (("--dsn", tcp_dsn(), "--name", "x", "--ledger", "t", "--ttl", "10"), "invalid duration '10'"),
        (("--dsn", tcp_dsn(), "--name", "n" * 256, "--ledger", "t"), "1 to 255 characters"),
        (("--dsn", tcp_dsn(), "--name", "x", "--ledger", "a..b"), "invalid table name"),
        (("--dsn", "host=x bogus", "--name", "x", "--ledger", "t"), "invalid dsn"),
        (("--dsn", tcp_dsn(), "--name", "x", "--ledger", "t", "--what"), "unknown argument"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
