"""examples/node/worker.js against the real server: the same scenarios as the
Python bot's (shared in test/python/scenarios.py)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from typing import Any, Callable

import pytest

from harness import (DEFERRABLE_DEFAULTS, ROOT, WAIT, WORKER, fenced_work, lease_state,
                     serializable_batch, tcp_dsn, unique)
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


# Leads once (ttl 8 s), prints "leader TOKEN", releases when told (a line on
# stdin; "after-loss": once the lease is lost, printing "lost REASON"), prints
# "released true|false".
ELECTOR_ONCE = """
const [lib, name, dsn] = process.argv.slice(1)
const { Elector } = require(lib + '/elector.js')
const { clientOptions } = require(lib + '/config.js')
const elector = new Elector({ name, clientOptions: clientOptions(dsn, 5000), ttl: 8000,
  log: (line) => console.error(line) })
elector.acquire().then((lease) => {
  console.log(`leader ${lease.token}`)
  process.stdin.once('data', async (line) => {
    if (String(line).startsWith('after-loss')) console.log(`lost ${await lease.lost}`)
    console.log(`released ${await elector.release()}`)
    process.exit(0)
  })
})
"""


def lead_once(options: str, before_release: Callable[[str, str], Any] = lambda name, token: None,
              when: str = "release") -> str:
    """ELECTOR_ONCE under the connection's `options` (which work as a role's or
    database's defaults would); before_release(name, token) runs while it leads;
    `when` is the line it is then sent. Asserts that the lease was released.
    Its stderr."""
    name = unique("node_once")
    elector = subprocess.Popen(
        ["node", "-e", ELECTOR_ONCE, str(ROOT / "examples/node/lib"), name,
         tcp_dsn(options=f"'{options}'")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([elector.stdout], [], [], 20)
        assert ready, "the elector never led"
        leader = elector.stdout.readline().split()
        assert leader[:1] == ["leader"], leader
        before_release(name, leader[1])
        out, err = elector.communicate(when + "\n", timeout=WAIT)
    finally:
        elector.kill()
        elector.wait()
    assert elector.returncode == 0 and out.splitlines()[-1:] == ["released true"], (out, err)
    return err


def test_the_elector_sets_its_own_session_defaults():
    """The worker's elector in sessions that default to read-only transactions
    (a role's or database's default_transaction_read_only): it still leads and
    releases, since its first statement makes read-write its session's
    default. Before: every acquire was refused (25006) and it never led."""
    assert "read-only" not in lead_once("-c default_transaction_read_only=on")


def test_a_deferrable_default_delays_no_connect():
    """A reporting role's defaults (SERIALIZABLE, READ ONLY, DEFERRABLE) while
    a serializable read-write transaction runs: every statement that takes a
    snapshot waits for a safe one until it ends, so the elector's first
    statement is a SET of its own defaults, which takes none. Before: its
    connect statement waited ("no reply from the server") and it never led."""
    with serializable_batch():
        assert "no reply" not in lead_once(DEFERRABLE_DEFAULTS)


def test_a_lock_timeout_default_fails_no_release():
    """Under a lock_timeout default the release waits for the lease's row
    until the leader's asserting transaction ends (fenced work ends before the
    lease moves). Before: "release failed: canceling statement due to lock
    timeout", and the lease stayed held until it expired."""
    working = []  # (still running at the release)
    err = lead_once("-c lock_timeout=100ms",
                    lambda name, token: working.append(fenced_work(name, token, 1)))
    assert "lock timeout" not in err
    assert working[0].result(WAIT) == "held"


def test_a_release_after_a_loss_sets_its_new_session_up_too():
    """A lease lost without the server's word (its holder's backend hangs:
    SIGSTOP) may still be ours on the server: release() frees it with its
    token over a new connection, which runs the connect statement first. Before:
    under a read-only default that release was refused until it gave up."""
    stopped = []

    def hang(name: str, token: str) -> None:
        pid = lease_state(name)[1]
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    try:
        err = lead_once("-c default_transaction_read_only=on", hang, "after-loss")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert "LOST (deadline" in err and "released after the loss" in err, err


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
