"""Opening the elector's connections: each host of a multi-host DSN gets a
connect timeout of its own, and a host that never answered is moved to the
back of the list.

Why: psycopg 3.1 connects with libpq's non-blocking calls and applies
connect_timeout to the whole attempt (libpq's blocking connect would apply it
per host), so with `host=a,b` and a first host that never answers (a dead
machine, a hung server) every attempt ended with "connection timeout expired"
and the second host was never tried. We try the hosts one by one instead,
each with the DSN's connect_timeout, as the C++ client does. A host name is
looked up here (asynchronously, as psycopg would) and each of its addresses
tried as a host of its own (host=NAME hostaddr=ADDRESS): psycopg gives libpq
every address of a name in one attempt, so a name whose first address never
answered (a member gone from the network) timed out every attempt the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

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


def _is_name(host: str) -> bool:
    """A host libpq would look up: not a socket directory (or @abstract), not
    a numeric address, not a list."""
    if not host or host[0] in "/@" or "," in host:
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return False
    except ValueError:
        return True


class _Target(NamedTuple):
    where: str  # host:port, for messages
    conninfo: str


class Connector:
    """Opens Links for one conninfo, keeping hosts that never answered last
    across calls."""

    def __init__(self, conninfo: str, fallback_timeout: float, env: Mapping[str, str]) -> None:
        params = conninfo_to_dict(conninfo)
        self._env = env
        self._hosts = per_host(params, env)
        self._aside: List[str] = []  # conninfos that never answered, the latest last
        self.host_timeout = host_timeout(params, env, fallback_timeout)

    async def open(self, limit: Optional[float] = None) -> Link:
        """A connection to the first host (or address of a host name) that
        accepts one, each tried for at most host_timeout (and all of them within
        `limit`, if given). One that did not answer in time goes to the back of
        the list. Raises DatabaseUnavailableError (with every failure)."""
        give_up_at = None if limit is None else time.monotonic() + limit
        targets, failures = await self._targets(give_up_at)
        if len(targets) == 1 and not failures:
            return await Link.open(targets[0].conninfo, self._timeout(give_up_at))
        for target in targets:
            timeout = self._timeout(give_up_at)
            if timeout <= 0:
                failures.append(f"{target.where}: not tried (out of time)")
                continue
            try:
                return await Link.open(target.conninfo, timeout)
            except ConnectTimeout as error:
                if target.conninfo in self._aside:
                    self._aside.remove(target.conninfo)
                self._aside = (self._aside + [target.conninfo])[-64:]  # silent: try it last
                failures.append(f"{target.where}: {error}")
                log.warning("%s did not answer within %g s; it is tried last from now on",
                            target.where, timeout)
            except DatabaseUnavailableError as error:
                failures.append(str(error))
        raise DatabaseUnavailableError("; ".join(failures))

    async def _targets(self, give_up_at: Optional[float]) -> Tuple[List[_Target], List[str]]:
        """What to try, in order (those set aside last, the one set aside
        longest ago first), and the host names that could not be looked up."""
        targets: List[_Target] = []
        failures: List[str] = []
        for params in self._hosts:
            try:
                targets += await self._addresses(params, give_up_at)
            except DatabaseUnavailableError as error:
                failures.append(str(error))
        if not targets:
            raise DatabaseUnavailableError("; ".join(failures))
        ready = [t for t in targets if t.conninfo not in self._aside]
        later = {t.conninfo: t for t in targets if t.conninfo in self._aside}
        return ready + [later[c] for c in self._aside if c in later], failures

    async def _addresses(self, params: Dict[str, Any],
                         give_up_at: Optional[float]) -> List[_Target]:
        """One host's targets: a host name as each of its addresses."""
        hosts = listed_setting(params, "host", self._env, "PGHOST")
        addrs = listed_setting(params, "hostaddr", self._env, "PGHOSTADDR")
        if len(hosts) != 1 or addrs or not _is_name(hosts[0]):
            return [_Target(_where(params), make_conninfo(**params))]
        name = hosts[0]
        try:
            found = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM),
                max(self._timeout(give_up_at), 0.001))
        except (OSError, asyncio.TimeoutError) as error:
            why = getattr(error, "strerror", None) or "timed out"
            raise DatabaseUnavailableError(
                f'could not translate host name "{name}" to address: {why}') from None
        addresses = list(dict.fromkeys(info[4][0] for info in found))
        if not addresses:
            raise DatabaseUnavailableError(f'could not translate host name "{name}" to address')
        return [_Target(_where(dict(params, host=f"{name} ({address})")),
                        make_conninfo(**dict(params, host=name, hostaddr=address)))
                for address in addresses]

    def _timeout(self, give_up_at: Optional[float]) -> float:
        if give_up_at is None:
            return self.host_timeout
        return min(self.host_timeout, give_up_at - time.monotonic())
