"""Opening the elector's connections: each host of a multi-host DSN gets a
connect timeout of its own, and a host that never answered is moved to the
back of the list.

Why: psycopg 3.1 connects with libpq's non-blocking calls and applies
connect_timeout to the whole attempt (libpq's blocking connect would apply it
per host), so with `host=a,b` and a first host that never answers (a dead
machine, a hung server) every attempt ended with "connection timeout expired"
and the second host was never tried. We try the hosts one by one instead,
each with the DSN's connect_timeout, as the C++ client does.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import DatabaseUnavailableError
from .link import ConnectTimeout, Link

log = logging.getLogger("singleton_lock")

LIBPQ_MIN_CONNECT_TIMEOUT = 2.0  # libpq treats 1 s as 2 s


def listed_setting(params: Mapping[str, Any], key: str, env: Mapping[str, str],
                   var: str) -> List[str]:
    """The DSN's list (host, hostaddr, port), else the variable's, split at
    every comma as libpq splits it; [] when neither says anything."""
    value = params.get(key)
    if value is None or value == "":
        value = env.get(var, "")
    return str(value).split(",") if value != "" else []


def per_host(params: Dict[str, Any], env: Mapping[str, str]) -> List[Dict[str, Any]]:
    """One parameter set per host of the DSN (or of PGHOST/PGHOSTADDR/PGPORT),
    in the DSN's order; the DSN itself when it names at most one host, or when
    its lists do not line up (libpq then reports that when connecting), or when
    it asks libpq to pick hosts (load_balance_hosts)."""
    hosts = listed_setting(params, "host", env, "PGHOST")
    addrs = listed_setting(params, "hostaddr", env, "PGHOSTADDR")
    ports = listed_setting(params, "port", env, "PGPORT")
    count = max(len(hosts), len(addrs))
    if count <= 1 or "load_balance_hosts" in params:
        return [dict(params)]
    if any(len(items) not in (0, 1, count) for items in (hosts, addrs, ports)):
        return [dict(params)]
    attempts = []
    for i in range(count):
        attempt = dict(params)
        for key, items in (("host", hosts), ("hostaddr", addrs), ("port", ports)):
            if items:
                attempt[key] = items[i] if len(items) == count else items[0]
        attempts.append(attempt)
    return attempts


def host_timeout(params: Mapping[str, Any], env: Mapping[str, str], fallback: float) -> float:
    """The connect timeout of one host: the DSN's connect_timeout (else
    PGCONNECT_TIMEOUT), with libpq's 2 s floor; `fallback` when neither sets a
    positive value (0 means "wait forever" to libpq; we never do)."""
    value = params.get("connect_timeout") or env.get("PGCONNECT_TIMEOUT") or ""
    try:
        seconds = float(int(str(value).strip()))
    except ValueError:
        return fallback
    return max(seconds, LIBPQ_MIN_CONNECT_TIMEOUT) if seconds > 0 else fallback


def _where(params: Mapping[str, Any]) -> str:
    host = params.get("host") or params.get("hostaddr") or "(default host)"
    port = params.get("port")
    return f"{host}:{port}" if port else str(host)


class _Target(NamedTuple):
    where: str  # host:port, for messages
    conninfo: str


class Connector:
    """Opens Links for one conninfo, keeping the order of its hosts across calls."""

    def __init__(self, conninfo: str, fallback_timeout: float, env: Mapping[str, str]) -> None:
        params = conninfo_to_dict(conninfo)
        self._targets = [_Target(_where(a), make_conninfo(**a)) for a in per_host(params, env)]
        self.host_timeout = host_timeout(params, env, fallback_timeout)

    @property
    def hosts(self) -> List[str]:
        """host:port of each host, in the order the next open() tries them."""
        return [t.where for t in self._targets]

    async def open(self, limit: Optional[float] = None) -> Link:
        """A connection to the first host that accepts one, each tried for at
        most host_timeout (and all of them within `limit`, if given). A host
        that did not answer in time goes to the back of the list. Raises
        DatabaseUnavailableError (with every host's failure)."""
        give_up_at = None if limit is None else time.monotonic() + limit
        if len(self._targets) == 1:
            return await Link.open(self._targets[0].conninfo, self._timeout(give_up_at))
        failures: List[str] = []
        for target in list(self._targets):
            timeout = self._timeout(give_up_at)
            if timeout <= 0:
                failures.append(f"{target.where}: not tried (out of time)")
                continue
            try:
                return await Link.open(target.conninfo, timeout)
            except ConnectTimeout as error:
                self._targets.remove(target)  # silent: try it last from now on
                self._targets.append(target)
                failures.append(f"{target.where}: {error}")
                log.warning("%s did not answer within %g s; hosts are tried in this order now: %s",
                            target.where, timeout, ", ".join(self.hosts))
            except DatabaseUnavailableError as error:
                failures.append(str(error))
        raise DatabaseUnavailableError("; ".join(failures))

    def _timeout(self, give_up_at: Optional[float]) -> float:
        if give_up_at is None:
            return self.host_timeout
        return min(self.host_timeout, give_up_at - time.monotonic())
