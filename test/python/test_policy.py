"""The pure rules of the Python client (policy.py, durations.py, options): no
server, time passed in (a fake clock)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

import singleton_lock
from singleton_lock import policy
from singleton_lock.durations import format_duration, interval_literal, parse_duration, parse_wait
from singleton_lock.errors import UsageError, is_fatal, translate
from singleton_lock.link import build_conninfo


def test_timing_derives_like_the_cpp_client():
    t = policy.make_timing(10.0)
    assert (t.grace, t.heartbeat_interval, t.safety_margin) == (2.5, 10 / 3, 1.0)
    assert t.wait_slice_max == 1.0 and t.reply_slack == 5.0 and t.connect_timeout == 5.0
    short = policy.make_timing(0.3)
    assert short.heartbeat_retry == 0.02 and short.connect_timeout == 2.0
    assert short.safety_margin == pytest.approx(0.03)


@pytest.mark.parametrize("ttl, grace, message", [
    (0.05, None, "ttl must be at least 100ms"),
    (1.0, 0.5, "must be less than ttl/2"),
    (1.0, -0.1, "must not be negative"),
])
def test_timing_refuses_bad_values(ttl, grace, message):
    with pytest.raises(UsageError, match=message):
        policy.make_timing(ttl, grace)


def test_lease_timer_counts_from_the_send_time_of_the_last_confirmation():
    t = policy.make_timing(10.0)
    timer = policy.LeaseTimer(t)
    assert timer.must_step_down(0.0), "no confirmation yet: not ours to assume"
    timer.confirmed(100.0)
    assert timer.deadline == 110.0
    assert timer.step_down_at == 110.0 - 2.5 - 1.0
    assert not timer.must_step_down(106.49) and timer.must_step_down(106.5)
    assert timer.next_heartbeat_at == pytest.approx(100.0 + 10 / 3)
    timer.confirmed(99.0)  # an older confirmation never moves the deadline back
    assert timer.deadline == 110.0
    assert timer.time_left(105.0) == 5.0 and timer.time_left(200.0) == 0.0


def test_every_accepted_ttl_and_grace_leave_room_for_a_heartbeat():
    for ttl in (0.1, 0.3, 1.0, 2.0, 10.0, 60.0, 3600.0):
        for fraction in (0.0, 0.1, 0.25, 0.49):
            t = policy.make_timing(ttl, ttl * fraction)
            timer = policy.LeaseTimer(t)
            timer.confirmed(0.0)
            assert timer.next_heartbeat_at < timer.step_down_at, (ttl, fraction)
            assert timer.step_down_at + t.grace < timer.deadline, (ttl, fraction)


def test_lead_before_confirmation():
    t = policy.make_timing(9.0)  # heartbeat 3 s, step-down at sent + 9 - 2.25 - 0.9 = 5.85
    assert policy.lead_before_confirmation(t, acquire_sent=0.0, now=1.0)
    assert not policy.lead_before_confirmation(t, acquire_sent=0.0, now=2.9)


def test_backoff_is_capped_exponential_with_equal_jitter():
    low = policy.Backoff(0.1, 5.0, lambda: 0.0)
    high = policy.Backoff(0.1, 5.0, lambda: 0.999999)
    lows = [low.next() for _ in range(10)]
    highs = [high.next() for _ in range(10)]
    assert lows[:3] == pytest.approx([0.05, 0.1, 0.2])
    assert highs[:3] == pytest.approx([0.1, 0.2, 0.4], rel=1e-5)
    assert max(highs) == pytest.approx(5.0, rel=1e-5) and lows[-1] == pytest.approx(2.5)
    low.reset()
    assert low.next() == pytest.approx(0.05)


def test_waits_stay_under_the_statement_timeout():
    """A session's statement_timeout (set for the role, say) cancels a wait
    that outlasts it: waits stay under it, with room for the rest of the call."""
    cap = policy.within_statement_timeout
    assert cap(5.0, 0.0) == 5.0  # off
    assert cap(5.0, 60.0) == 5.0
    assert cap(5.0, 1.0) == pytest.approx(0.8)  # a fifth left
    assert cap(5.0, 0.2) == pytest.approx(0.15)  # at least 50 ms left
    assert cap(5.0, 0.08) == pytest.approx(0.04)  # else half of it
    assert cap(5.0, 0.001) == pytest.approx(0.001)  # never 0: no busy loop
    assert cap(0.0, 1.0) == 0.0  # "don't wait" stays so
    assert cap(0.3, 1.0) == 0.3


def test_wait_slices():
    t = policy.make_timing(10.0)
    assert policy.wait_slice(t, 0.0, None) == 1.0
    assert policy.wait_slice(t, 0.0, 0.3) == pytest.approx(0.3)
    assert policy.wait_slice(t, 5.0, 0.3) == 0.0
    assert policy.wait_ran_out(5.0, 5.0) and not policy.wait_ran_out(5.0, None)
    assert policy.reply_deadline(t, 10.0, 1.0) == 16.0


def test_durations():
    assert parse_duration("250ms") == 0.25 and parse_duration("1.5s") == 1.5
    assert parse_duration("2m") == 120 and parse_duration("1h") == 3600
    assert parse_duration(3) == 3.0 and parse_duration(timedelta(milliseconds=20)) == 0.02
    for bad in ("10", "s", "-1s", "1d", "1.s", "", " ms"):
        with pytest.raises(UsageError, match="invalid duration"):
            parse_duration(bad)
    for bad in (-1, float("nan"), float("inf"), True, None):
        with pytest.raises(UsageError):
            parse_duration(bad)  # type: ignore[arg-type]
    assert parse_wait("forever") is None and parse_wait(None) is None
    assert interval_literal(10.0) == "10000 milliseconds"
    assert [format_duration(x) for x in (0.25, 10, 120, 3600, 1.5)] == \
        ["250ms", "10s", "2m", "1h", "1500ms"]


def test_options_are_checked_before_any_connection():
    bad = [
        (dict(name=""), "name must be 1 to 255 characters"),
        (dict(name="x" * 256), "name must be 1 to 255 characters"),
        (dict(name=7), "name must be a string"),
        (dict(name="n", holder=""), "holder must be 1 to 255 characters"),
        (dict(name="   "), "name must not be only white space"),
        (dict(name="a\nb"), "name must not contain control characters"),
        (dict(name="bad\udcffname"), "name must be valid Unicode"),  # (a stray byte, escaped)
        (dict(name="n", holder="\ud800"), "holder must be valid Unicode"),
        (dict(name="n", ttl="5"), "invalid duration"),
        (dict(name="n", ttl="1s", grace="600ms"), "grace"),
        (dict(name="n", dsn="host=x bogus"), "invalid dsn"),
        (dict(name="n", dsn="host=x port=abc"),
         'invalid dsn: invalid integer value "abc" for connection option "port"'),
        (dict(name="n", dsn="host=x sslmode=requre"), 'invalid dsn: invalid sslmode value: "requre"'),
        (dict(name="n", wait="later"), "invalid duration"),
        (dict(name="n", priority="high"), "priority must be an integer"),
        (dict(name="n", priority=True), "priority must be an integer"),
        (dict(name="n", priority=2**31), "priority must be between"),
    ]
    for kwargs, message in bad:
        with pytest.raises(UsageError, match=message):
            singleton_lock.AsyncElector(**kwargs)


def test_dsn_values_libpq_refuses_at_connect_are_usage_errors(monkeypatch):
    """The same rules as the C++ client's (test/unit/connect_params_test.cpp)."""
    refused = [
        ("port=5432x", 'invalid integer value "5432x" for connection option "port"'),
        ("port=99999", 'invalid port number: "99999"'),
        ("port=0", 'invalid port number: "0"'),
        ("host=a,b port=5432,abc", 'invalid integer value "abc"'),
        ("host=a,b port=1,2,3", "could not match 3 port numbers to 2 hosts"),
        ("host=a,b hostaddr=10.0.0.1,10.0.0.2,10.0.0.3", "could not match 2 host names to 3"),
        ("postgresql://a:1,b:2,c:x/db", 'invalid integer value "x"'),
        ("host=a sslmode=REQUIRE", 'invalid sslmode value: "REQUIRE"'),
        ("host=a gssencmode=on", 'invalid gssencmode value: "on"'),
        ("host=a channel_binding=yes", 'invalid channel_binding value: "yes"'),
        ("host=a target_session_attrs=master", 'invalid target_session_attrs value: "master"'),
    ]
    for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGSERVICE", "PGSSLMODE"):
        monkeypatch.delenv(name, raising=False)
    for dsn, message in refused:
        with pytest.raises(UsageError, match=re.escape(message)):
            singleton_lock.AsyncElector("n", dsn=dsn)
    for dsn in ("port= 5432 ", "port=+5432", "host=a,b port=1,", "host=a,b,c port=7",
                "host=a,b hostaddr=10.0.0.1,10.0.0.2 port=1,2", "host=a sslmode=verify-full",
                "host=a target_session_attrs=prefer-standby", "service=prod host=a,b,c port=1,2"):
        singleton_lock.AsyncElector("n", dsn=dsn)
    monkeypatch.setenv("PGSSLMODE", "on")
    with pytest.raises(UsageError, match='invalid sslmode value: "on"'):
        singleton_lock.AsyncElector("n", dsn="host=a")
    singleton_lock.AsyncElector("n", dsn="host=a sslmode=require")
    monkeypatch.setenv("PGSERVICE", "prod")
    singleton_lock.AsyncElector("n", dsn="host=a")


def test_default_holder_ids_are_unguessable_and_distinct():
    a, b = singleton_lock.default_holder_id(), singleton_lock.default_holder_id()
    assert a != b and len(a.rsplit(":", 1)[1]) == 12
    assert singleton_lock.AsyncElector("n").holder != singleton_lock.AsyncElector("n").holder


def test_connection_defaults_never_override_the_dsn():
    t = policy.make_timing(10.0)
    info = build_conninfo("host=db connect_timeout=17 keepalives_idle=9",
                          policy.connection_defaults(t), {})
    assert "connect_timeout=17" in info and "keepalives_idle=9" in info
    assert "tcp_user_timeout=5000" in info and "keepalives_count=3" in info
    assert "connect_timeout" not in build_conninfo("", {"connect_timeout": "5"},
                                                   {"PGCONNECT_TIMEOUT": "3"})
    uri = build_conninfo("postgresql://u@h:5/d?connect_timeout=2", {"connect_timeout": "5"}, {})
    assert "connect_timeout=2" in uri and "host=h" in uri
    assert "client_encoding=UTF8" in build_conninfo("", policy.connection_defaults(t), {})
    assert "client_encoding" not in build_conninfo("", {"client_encoding": "UTF8"},
                                                   {"PGCLIENTENCODING": "LATIN1"})


def test_sqlstates_map_to_typed_errors():
    import psycopg
    from psycopg import errors as pe  # each class carries its SQLSTATE

    assert isinstance(translate(pe.InvalidParameterValue("x")), singleton_lock.InvalidArgumentError)
    assert isinstance(translate(pe.InsufficientPrivilege("x")), singleton_lock.PermissionDeniedError)
    assert isinstance(translate(pe.UndefinedFunction("x")), singleton_lock.ExtensionMissingError)
    assert isinstance(translate(pe.QueryCanceled("x")), singleton_lock.QueryCanceledError)
    assert isinstance(translate(pe.ReadOnlySqlTransaction("x")), singleton_lock.ReadOnlyServerError)
    assert isinstance(translate(pe.ObjectNotInPrerequisiteState("x")),
                      singleton_lock.LeaseNotHeldError)
    assert isinstance(translate(pe.AdminShutdown("x")), singleton_lock.DatabaseUnavailableError)
    assert isinstance(translate(psycopg.OperationalError("x")),
                      singleton_lock.DatabaseUnavailableError)
    assert is_fatal(translate(pe.InsufficientPrivilege("x")))
    assert not is_fatal(translate(pe.ReadOnlySqlTransaction("x")))
    assert not is_fatal(translate(pe.QueryCanceled("x")))
    assert not is_fatal(translate(psycopg.OperationalError("x")))


# --- reconnect pacing across a failover (the C++ client's policy::Reconnect) ---

LIMITS = dict(initial=0.1, maximum=5.0, failover_max=0.5, failover_window=60.0)


class FakeClock:
    """A reconnect policy, a fake clock and a fixed jitter draw."""

    def __init__(self, r: float = 0.999999) -> None:
        self.now = 3_600_000.0
        self.r = r
        self.reconnect = policy.Reconnect(**LIMITS, random=lambda: self.r)

    def found_after(self, until: float, primary_missing: bool) -> float:
        """Time from the loss of a working connection until the first attempt
        at or after `until`, retrying each time a delay runs out."""
        lost = self.now
        while self.now - lost < until:
            self.now += self.reconnect.next(self.now, primary_missing)
        return self.now - lost


def test_first_retry_after_losing_a_working_connection_is_immediate():
    f = FakeClock()
    f.reconnect.working()
    assert f.reconnect.was_working
    assert f.reconnect.next(f.now, False) == 0.0
    assert f.reconnect.next(f.now, False) == pytest.approx(0.1, rel=1e-5)  # then the backoff


def test_without_a_working_connection_the_first_retry_waits():
    assert FakeClock().reconnect.next(0.0, False) == pytest.approx(0.1, rel=1e-5)


@pytest.mark.parametrize("promoted_after", [0.3, 1.0, 3.0, 10.0, 59.0])
@pytest.mark.parametrize("r", [0.0, 0.5, 0.999999])
def test_new_primary_found_within_the_failover_cap(promoted_after, r):
    """The primary crashed, a standby answers read-only until it is promoted:
    the attempt after the promotion comes within failover_max (before this
    policy the delays grew to seconds)."""
    f = FakeClock(r)
    f.reconnect.working()
    assert f.found_after(promoted_after, True) - promoted_after <= LIMITS["failover_max"]


def test_failover_window_caps_delays_without_a_standby_sign():
    f = FakeClock()  # a virtual IP with nothing behind it yet: no sign, but a recent loss
    f.reconnect.working()
    assert f.found_after(20.0, False) - 20.0 <= LIMITS["failover_max"]


def test_outside_a_failover_delays_grow_to_the_max():
    f = FakeClock()
    f.reconnect.working()
    f.found_after(LIMITS["failover_window"], False)  # the window has passed
    delays = []
    for _ in range(10):
        delays.append(f.reconnect.next(f.now, False))
        f.now += delays[-1]
    assert LIMITS["failover_max"] < max(delays) <= LIMITS["maximum"]


def test_a_standby_sign_keeps_the_cap_after_the_window():
    f = FakeClock()  # e.g. started while the cluster had only standbys
    for _ in range(200):
        delay = f.reconnect.next(f.now, True)
        assert delay <= LIMITS["failover_max"]
        f.now += delay


def test_immediate_retry_at_most_once_per_max():
    """A server that closes every connection right after its first reply is
    not retried at once every time."""
    f = FakeClock(r=0.0)
    f.reconnect.working()
    assert f.reconnect.next(f.now, False) == 0.0
    f.now += 0.01
    f.reconnect.working()
    assert f.reconnect.next(f.now, False) == pytest.approx(0.05)
    f.now += LIMITS["maximum"]
    f.reconnect.working()
    assert f.reconnect.next(f.now, False) == 0.0


def test_a_connection_we_closed_ourselves_is_no_failover_sign():
    f = FakeClock(r=0.0)
    f.reconnect.working()
    f.reconnect.stopped()  # released, or lost by a refused heartbeat: the link worked
    assert not f.reconnect.was_working
    assert f.reconnect.next(f.now, False) == pytest.approx(0.05)
    f.now += LIMITS["failover_window"] / 2
    delays = [f.reconnect.next(f.now, False) for _ in range(10)]
    assert max(delays) > LIMITS["failover_max"], "no failover window without a loss"


@pytest.mark.parametrize("r", [0.0, 0.25, 0.5, 0.75, 0.999999])
def test_failover_jitter_stays_within_half_to_full_cap(r):
    f = FakeClock(r)
    for _ in range(10):
        f.reconnect.next(f.now, True)
    assert LIMITS["failover_max"] / 2 <= f.reconnect.next(f.now, True) <= LIMITS["failover_max"]


def test_backoff_cap_per_call():
    b = policy.Backoff(0.1, 5.0, lambda: 0.999999)
    assert [b.next(0.5) for _ in range(5)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5], rel=1e-5)
    assert b.next() == pytest.approx(3.2, rel=1e-5)  # the attempt count went on


@pytest.mark.parametrize("message", [
    'connection to server at "127.0.0.1", port 5432 failed: Connection refused\n'
    'connection to server at "127.0.0.1", port 5433 failed: session is read-only',
    'connection to server at "10.0.0.2", port 5432 failed: server is in hot standby mode',
    'connection to server on socket "/tmp/.s.PGSQL.5432" failed: FATAL:  the database system '
    'is starting up',
    "FATAL:  the database system is shutting down",
    "FATAL:  the database system is not yet accepting connections",
])
def test_standby_and_startup_refusals_are_failover_signs(message):
    assert policy.primary_missing(singleton_lock.DatabaseUnavailableError(message))


def test_read_only_server_errors_are_failover_signs_and_others_are_not():
    from psycopg import errors as pe

    assert policy.primary_missing(translate(pe.ReadOnlySqlTransaction("cannot execute")))
    assert not policy.primary_missing(singleton_lock.DatabaseUnavailableError(
        'connection to server at "127.0.0.1", port 5432 failed: Connection refused'))
    assert not policy.primary_missing(singleton_lock.DatabaseUnavailableError(
        "no reply from the server within 1.000 s"))
    assert not policy.primary_missing(translate(pe.DeadlockDetected("deadlock detected")))
    assert not policy.primary_missing(UsageError("session is read-only"))


def test_failover_options_are_checked():
    opts = singleton_lock.AsyncElector("n").options
    assert (opts.failover_backoff_max, opts.failover_window) == (0.5, 60.0)
    custom = singleton_lock.AsyncElector("n", failover_backoff_max="250ms",
                                         failover_window="2m").options
    assert (custom.failover_backoff_max, custom.failover_window) == (0.25, 120.0)
    with pytest.raises(UsageError, match="failover_window"):
        singleton_lock.AsyncElector("n", failover_window="soon")


# --- hosts of a multi-host DSN (connector.py) ---

def test_each_host_of_a_multi_host_dsn_is_tried_on_its_own():
    from psycopg.conninfo import conninfo_to_dict
    from singleton_lock.connector import host_timeout, per_host

    params = conninfo_to_dict("host=a,b,c port=5432,5433,5434 dbname=app target_session_attrs=read-write")
    attempts = per_host(params, {})
    assert [(a["host"], a["port"]) for a in attempts] == [("a", "5432"), ("b", "5433"), ("c", "5434")]
    assert all(a["dbname"] == "app" and a["target_session_attrs"] == "read-write" for a in attempts)
    one_port = per_host(conninfo_to_dict("host=a,b port=6000"), {})
    assert [(a["host"], a["port"]) for a in one_port] == [("a", "6000"), ("b", "6000")]
    uri = per_host(conninfo_to_dict("postgresql://u@a:1,b:2/d"), {})
    assert [(a["host"], a["port"], a["user"]) for a in uri] == [("a", "1", "u"), ("b", "2", "u")]
    from_env = per_host({}, {"PGHOST": "x,y", "PGPORT": "7,8"})
    assert [(a["host"], a["port"]) for a in from_env] == [("x", "7"), ("y", "8")]
    addrs = per_host(conninfo_to_dict("host=a,b hostaddr=10.0.0.1,10.0.0.2"), {})
    assert [(a["host"], a["hostaddr"]) for a in addrs] == [("a", "10.0.0.1"), ("b", "10.0.0.2")]
    # One host, lists that do not line up, or libpq choosing: the DSN as it is.
    for dsn in ("host=a port=1", "host=a,b port=1,2,3", ""):
        assert per_host(conninfo_to_dict(dsn), {}) == [conninfo_to_dict(dsn)]
    libpq16 = {"host": "a,b", "load_balance_hosts": "random"}  # (libpq 15 does not parse it)
    assert per_host(libpq16, {}) == [libpq16]
    assert host_timeout({"connect_timeout": "7"}, {}, 5.0) == 7.0
    assert host_timeout({"connect_timeout": "1"}, {}, 5.0) == 2.0  # libpq's floor
    assert host_timeout({}, {"PGCONNECT_TIMEOUT": "9"}, 5.0) == 9.0
    assert host_timeout({"connect_timeout": "0"}, {}, 5.0) == 5.0  # never wait forever
    assert host_timeout({}, {}, 5.0) == 5.0
