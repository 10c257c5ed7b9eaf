"""The pure rules of the Python client (policy.py, durations.py, options): no
server, time passed in (a fake clock)."""

from __future__ import annotations

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
        (dict(name="n", ttl="5"), "invalid duration"),
        (dict(name="n", ttl="1s", grace="600ms"), "grace"),
        (dict(name="n", dsn="host=x bogus"), "invalid dsn"),
        (dict(name="n", wait="later"), "invalid duration"),
    ]
    for kwargs, message in bad:
        with pytest.raises(UsageError, match=message):
            singleton_lock.AsyncElector(**kwargs)


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
