"""Connection settings that can never connect, found before the first attempt.

libpq accepts ``port=abc`` or ``sslmode=requre`` when it parses a DSN and
refuses them only when asked to connect, in the same words as a server that
is down; retried, such a mistake would keep a standby waiting for ever. These
checks repeat libpq's own rules for the values it checks before any I/O (as
the C++ client's conninfo_check does), so that they are usage errors. When in
doubt a value passes and is left to libpq: with a service file (whose
settings are not visible here), or under a libpq whose rules are not known
here (other than 14-18)."""

from __future__ import annotations

import re
from typing import Dict, Mapping, Sequence

from psycopg import pq

from .connector import listed_setting

_ONE_OF: Dict[str, Sequence[str]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby",
                             "prefer-standby"),
}
_ENV = {"sslmode": "PGSSLMODE", "gssencmode": "PGGSSENCMODE",
        "channel_binding": "PGCHANNELBINDING", "target_session_attrs": "PGTARGETSESSIONATTRS"}
# libpq's parse_int_param: strtol (leading white space, a sign), then white space.
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*\Z")


class ConninfoRefused(ValueError):
    """A value libpq refuses whenever a connect gets to it (libpq's words)."""


def check_fixed_values(params: Mapping[str, object], env: Mapping[str, str]) -> None:
    """`params`: the DSN as conninfo_to_dict parsed it. Raises ConninfoRefused."""
    if not 140000 <= pq.version() < 190000:
        return
    service = bool(params.get("service") or env.get("PGSERVICE"))
    # With a service file only the DSN's values: libpq ranks the file (which is
    # not visible here) above the environment.
    visible_env: Mapping[str, str] = {} if service else env
    _check_ports(listed_setting(params, "port", visible_env, "PGPORT"))
    if not service:
        _check_list_lengths(*(len(listed_setting(params, key, env, var)) for key, var in
                              (("host", "PGHOST"), ("hostaddr", "PGHOSTADDR"), ("port", "PGPORT"))))
    for key, allowed in _ONE_OF.items():
        value = params.get(key)
        value = str(value) if value not in (None, "") else visible_env.get(_ENV[key], "")
        if value and value not in allowed:
            raise ConninfoRefused(f'invalid {key} value: "{value}"')


def _check_ports(ports: Sequence[str]) -> None:
    for port in ports:
        if not port:
            continue  # this host's default port
        if not _INTEGER.match(port) or not -2**31 <= int(port) < 2**31:
            raise ConninfoRefused(f'invalid integer value "{port}" for connection option "port"')
        if not 1 <= int(port) <= 65535:
            raise ConninfoRefused(f'invalid port number: "{port}"')


def _check_list_lengths(hosts: int, addrs: int, ports: int) -> None:
    """libpq's count: hostaddr's list, else host's, else one default host."""
    if hosts and addrs and hosts != addrs:
        raise ConninfoRefused(f"could not match {hosts} host names to {addrs} hostaddr values")
    n = addrs or hosts or 1
    if ports > 1 and ports != n:
        raise ConninfoRefused(f"could not match {ports} port numbers to {n} hosts")
