"""Default holder ids. A holder id is a credential (the same holder renews an
existing lease and gets its token), hence the random part."""

from __future__ import annotations

import os
import secrets
import socket
import unicodedata

MAX_CHARS = 255


def default_holder_id() -> str:
    """"hostname:pid:random", like the C++ client's."""
    host = socket.gethostname() or "unknown"
    return f"{host}:{os.getpid()}:{secrets.token_hex(6)}"


def check_text(value: object, what: str) -> str:
    """Lease names and holder ids: 1..255 characters, not only white space, no
    control characters (the server's rules, checked early for a clear error
    before any connection is made), and something UTF-8 can carry."""
    from .errors import UsageError

    if not isinstance(value, str):
        raise UsageError(f"{what} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_CHARS:
        raise UsageError(f"{what} must be 1 to {MAX_CHARS} characters long (got {len(value)})")
    if value.isspace():
        raise UsageError(f"{what} must not be only white space")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise UsageError(f"{what} must not contain control characters")
    if any(unicodedata.category(c) == "Cs" for c in value):  # (UTF-8 cannot carry them)
        raise UsageError(f"{what} must be valid Unicode (it has a lone surrogate, as "
                         "os.fsdecode makes of a byte that is not UTF-8)")
    return value
