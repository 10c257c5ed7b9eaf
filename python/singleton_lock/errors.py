"""Typed errors of the singleton_lock client, and the one place that maps
psycopg's errors (SQLSTATE) onto them."""

from __future__ import annotations

from typing import Optional

import psycopg


class Error(Exception):
    """Base of every error this library raises."""


class UsageError(Error, ValueError):
    """Options refused by the client itself (bad duration, grace >= ttl/2, ...)."""


class DatabaseUnavailableError(Error):
    """The database could not be reached, the connection broke, or a reply did
    not arrive in time. Always worth retrying (a standby does so by itself)."""


class ServerError(Error):
    """The server answered with an error; ``sqlstate`` is its SQLSTATE code."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class InvalidArgumentError(ServerError):
    """SQLSTATE class 22 (22023 invalid_parameter_value, 22004 null_value_not_allowed)."""


class PermissionDeniedError(ServerError):
    """42501: the role lacks EXECUTE (see the GRANT in the operator's guide)."""


class ExtensionMissingError(ServerError):
    """42883 / 42P01 / 3F000: usually CREATE EXTENSION singleton_lock was not run;
    42704: the probe found no extension in the database."""


class QueryCanceledError(ServerError):
    """57014: statement_timeout or an explicit cancel."""


class ReadOnlyServerError(ServerError):
    """25006: connected to a read-only standby; connect to the primary."""


class LeaseNotHeldError(ServerError):
    """55000 from singleton_assert: the token is not the current token of a live
    lease, so the transaction that asserted it was fenced off."""


class LeaseLost(Error):
    """The lease was lost while leading (refused heartbeat, local deadline, or
    the holding connection broke)."""

    def __init__(self, reason: "object", detail: str) -> None:
        super().__init__(f"lease lost: {reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SteppedDown(LeaseLost):
    """run() gave the lease up because a waiter of higher priority asked for it
    (extension 1.1): the leader's work was cancelled and the release handed the
    lease to that waiter. run_as_leader() then waits as a standby again."""

    def __init__(self, detail: str = "a waiter of higher priority asked for the lease") -> None:
        Error.__init__(self, f"stepped down: {detail}")
        self.reason = "step-down"
        self.detail = detail


class WaitExpired(Error):
    """The ``wait`` option ran out before the lease was ours."""


class ElectorClosed(Error):
    """The elector was closed while a call was waiting for the lease."""


_CONNECTION_STATES = ("57P01", "57P02", "57P03")
_MISSING_STATES = ("42883", "42P01", "3F000")


def translate(error: psycopg.Error) -> Error:
    """The typed error for a psycopg error (connection errors first)."""
    sqlstate: Optional[str] = error.sqlstate
    message = str(error).strip() or type(error).__name__
    if sqlstate is None:  # no server verdict: the connection failed or broke
        return DatabaseUnavailableError(message)
    if sqlstate.startswith("08") or sqlstate in _CONNECTION_STATES:
        return DatabaseUnavailableError(message)
    if sqlstate.startswith("22"):
        return InvalidArgumentError(message, sqlstate)
    if sqlstate == "42501":
        return PermissionDeniedError(message, sqlstate)
    if sqlstate in _MISSING_STATES:
        return ExtensionMissingError(
            message + " (is the extension installed in this database, in the schema named, and at "
            "the version needed? CREATE EXTENSION singleton_lock, ALTER EXTENSION singleton_lock "
            "UPDATE)", sqlstate
        )
    if sqlstate == "57014":
        return QueryCanceledError(message, sqlstate)
    if sqlstate == "25006":
        return ReadOnlyServerError(message, sqlstate)
    if sqlstate == "55000":
        return LeaseNotHeldError(message, sqlstate)
    return ServerError(message, sqlstate)


def is_fatal(error: BaseException) -> bool:
    """Whether retrying cannot help (a setup problem or a bug): a standby gives
    up on these; everything else (outages, shutdowns, timeouts) is retried."""
    if isinstance(error, (UsageError, InvalidArgumentError, PermissionDeniedError,
                          ExtensionMissingError)):
        return True
    if isinstance(error, ServerError):
        return error.sqlstate.startswith("42")  # syntax error or access rule violation
    return False
