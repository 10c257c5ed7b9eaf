"""examples/node/worker.js against the real server: the same scenarios as the
Python bot's (shared in test/python/scenarios.py)."""

from __future__ import annotations

import subprocess

import pytest

from harness import ROOT, WAIT, WORKER, tcp_dsn, unique
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


# Leads once, prints "leader TOKEN", releases, prints "released true|false".
ELECTOR_ONCE = """
const [lib, name, dsn] = process.argv.slice(1)
const { Elector } = require(lib + '/elector.js')
const { clientOptions } = require(lib + '/config.js')
const elector = new Elector({ name, clientOptions: clientOptions(dsn, 5000), ttl: 3000,
  log: (line) => console.error(line) })
elector.acquire().then(async (lease) => {
  console.log(`leader ${lease.token}`)
  console.log(`released ${await elector.release()}`)
  process.exit(0)
})
"""


def test_the_elector_sets_its_own_session_defaults():
    """The worker's elector in sessions that default to read-only transactions
    (a role's or database's default_transaction_read_only; here the
    connection's options, which work the same): it still leads and releases,
    since its first statement makes read-write its session's default. Before:
    every acquire was refused (25006) and it never led."""
    dsn = tcp_dsn(options="'-c default_transaction_read_only=on'")
    try:
        result = subprocess.run(["node", "-e", ELECTOR_ONCE, str(ROOT / "examples/node/lib"),
                                 unique("node_ro"), dsn], capture_output=True, text=True,
                                timeout=20)
    except subprocess.TimeoutExpired as timeout:
        pytest.fail(f"the elector never led and released: {timeout.stderr!r}")
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 2, (result.stdout, result.stderr)
    assert lines[0].startswith("leader ") and lines[1] == "released true", result.stdout
    assert "read-only" not in result.stderr


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
