"""Which warehouse errors are worth retrying, and how long to wait: the one place that decides.

Transient: the connection dropped, was refused or reset, timed out, or the server is shutting
down or out of resources; the same query can succeed on the next attempt. Everything else
(missing tables, bad SQL, permissions, schema drift) fails the same way every time and is
raised at once.
"""

import random
import socket

import adbc_driver_manager

# What a warehouse read can raise that is about the warehouse: the DB-API errors of every ADBC
# driver, and the OS's network errors. Anything else is a bug in our own code and must surface
# as itself, not as "the warehouse rejected the read".
WAREHOUSE_ERRORS = (adbc_driver_manager.Error, OSError)

# SQLSTATE classes/codes that describe the connection or server state, not the query.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P0", "40001", "40P01", "HYT")
_DRIVER_PREFIXES = ("[libpq]", "[sqlite]")
_TRANSIENT_MESSAGES = (
    "connection refused",
    "connection reset",
    "could not connect",
    "server closed the connection",
    "terminating connection",
    "timeout",
    "timed out",
    "database is locked",
    "broken pipe",
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, ConnectionError | TimeoutError | socket.timeout):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
        return True
    if sqlstate:
        return False
    message = str(error).lower()
    # An error while reading a result stream comes through Arrow's C stream interface as a
    # plain OSError carrying the driver's message (prefixed "[libpq]", "[SQLite]") and no
    # SQLSTATE; it is judged by its message like a driver's OperationalError.
    from_driver = type(error).__name__ == "OperationalError" or (
        type(error) is OSError and message.startswith(_DRIVER_PREFIXES)
    )
    return from_driver and any(fragment in message for fragment in _TRANSIENT_MESSAGES)


def retry_delay(attempt: int, base_seconds: float, jitter: float, rng: random.Random) -> float:
    """Exponential backoff with +/- `jitter` spread: attempt 0 waits about base, 1 about 2x base.

    With jitter below 1/3 the ranges of consecutive attempts never overlap, so every wait is
    longer than the one before.
    """
    return base_seconds * (2**attempt) * rng.uniform(1 - jitter, 1 + jitter)
