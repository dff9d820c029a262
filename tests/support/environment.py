"""Where the tests' real parts are: the repository, the seeded days, Postgres, free ports."""

import datetime as dt
from pathlib import Path

from scripts.dagster_processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

# A fixed window of seeded days, so results never depend on today's date.
SEEDED_FIRST_DAY = dt.date(2026, 10, 29)
SEEDED_LAST_DAY = dt.date(2026, 11, 6)
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"

__all__ = [
    "POSTGRES_DSN",
    "REPO_ROOT",
    "SEEDED_FIRST_DAY",
    "SEEDED_LAST_DAY",
    "free_port",
    "postgres_unavailable_reason",
]


def postgres_unavailable_reason() -> str | None:
    """None when the real PostgreSQL answers; otherwise why not, for the skip message."""
    try:
        import adbc_driver_postgresql.dbapi

        with adbc_driver_postgresql.dbapi.connect(POSTGRES_DSN):
            return None
    except Exception as err:  # any failure to connect means "no server here", said in the skip
        return f"no PostgreSQL answers at {POSTGRES_DSN} ({type(err).__name__}: {err})"
