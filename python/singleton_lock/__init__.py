"""singleton_lock: leader election and singleton leases on PostgreSQL.

Client of the singleton_lock PostgreSQL extension, pure Python over psycopg 3.

    async def main(lease):            # runs only while we lead
        ...                           # pass lease.token to singleton_assert

    asyncio.run(singleton_lock.run_as_leader("chat-bot", main, dsn="...", ttl="10s"))

AsyncElector (asyncio) and Elector (blocking) give finer control. The guide:
docs/python.md in the project's repository.
"""

from .durations import format_duration, parse_duration
from .elector import AsyncElector
from .errors import (DatabaseUnavailableError, ElectorClosed, Error, ExtensionMissingError,
                     InvalidArgumentError, LeaseLost, LeaseNotHeldError, PermissionDeniedError,
                     QueryCanceledError, ReadOnlyServerError, ServerError, SteppedDown,
                     UsageError, WaitExpired)
from .holder import default_holder_id
from .lease import Lease, LossReason, State
from .link import abandon
from .runner import run_as_leader
from .sync import Elector, SyncLease

__version__ = "1.1.0"

__all__ = [
    "AsyncElector", "DatabaseUnavailableError", "Elector", "ElectorClosed", "Error",
    "ExtensionMissingError", "InvalidArgumentError", "Lease", "LeaseLost", "LeaseNotHeldError",
    "LossReason", "PermissionDeniedError", "QueryCanceledError", "ReadOnlyServerError",
    "ServerError", "State", "SteppedDown", "SyncLease", "UsageError", "WaitExpired", "abandon", "default_holder_id",
    "format_duration", "parse_duration", "run_as_leader",
]
