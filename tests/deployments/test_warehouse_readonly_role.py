"""deployments/postgres/readonly_role.sql on the real PostgreSQL (127.0.0.1:5432, trust auth),
applied through psql as an operator would: the pipeline's warehouse role reads the upstream
table through the project's own Warehouse resource and every kind of write is refused."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import errors

from contract.source import CLICK_STREAM
from resources.warehouse.resource import Warehouse
from scripts.synthetic_events import seed_warehouse
from tests.support.environment import POSTGRES_DSN, postgres_unavailable_reason
from tests.support.example import example_postgres

GRANTS = Path(__file__).resolve().parents[2] / "deployments" / "postgres" / "readonly_role.sql"
DAY = dt.date(2026, 11, 2)
REFUSED = (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)
pytestmark = pytest.mark.postgres


def _dsn(database: str, user: str = "postgres") -> str:
    return f"postgresql://{user}@127.0.0.1:5432/{database}"


@pytest.fixture
def reader(postgres_database: str) -> Iterator[tuple[str, str]]:
    """(database, role): a seeded upstream schema and the read-only role the grant file made;
    the role (cluster-wide) is dropped afterwards, the database by its fixture."""
    if shutil.which("psql") is None or postgres_unavailable_reason():
        pytest.skip("needs psql and the PostgreSQL at 127.0.0.1:5432")
    schema, role = "upstream", f"reader_{uuid.uuid4().hex[:10]}"
    seed_warehouse(example_postgres(_dsn(postgres_database), schema), DAY, DAY)
    subprocess.run(
        ["psql", _dsn(postgres_database), "-q", "-v", "ON_ERROR_STOP=1"]
        + [
            f"-v{name}={value}"
            for name, value in {
                "role": role,
                "password": "unused-with-trust",
                "schema": schema,
                "owner": "postgres",
            }.items()
        ]
        + ["-f", str(GRANTS)],
        check=True,
        capture_output=True,
    )
    try:
        yield postgres_database, role
    finally:
        for dsn in (_dsn(postgres_database), POSTGRES_DSN):
            admin = psycopg2.connect(dsn)
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute(f'DROP OWNED BY "{role}"')
                if dsn == POSTGRES_DSN:
                    cursor.execute(f'DROP ROLE "{role}"')
            admin.close()


def test_the_pipeline_role_reads_the_upstream_table(reader: tuple[str, str]) -> None:
    database, role = reader
    warehouse = Warehouse(
        backend="postgres", postgres_dsn=_dsn(database, role), postgres_schema="upstream"
    )
    assert warehouse.read_day_raw(DAY, CLICK_STREAM).num_rows > 0
    assert warehouse.read_watermark(CLICK_STREAM) is not None


@pytest.mark.parametrize(
    "statement",
    [
        f"INSERT INTO upstream.{CLICK_STREAM.table} "
        f"SELECT * FROM upstream.{CLICK_STREAM.table} LIMIT 1",
        f"UPDATE upstream.{CLICK_STREAM.table} SET event_date = event_date",
        f"DELETE FROM upstream.{CLICK_STREAM.table}",
        f"TRUNCATE upstream.{CLICK_STREAM.table}",
        f"DROP TABLE upstream.{CLICK_STREAM.table}",
        f"ALTER TABLE upstream.{CLICK_STREAM.table} ADD COLUMN forged int",
        "CREATE TABLE upstream.forged (x int)",
        "CREATE TABLE public.forged (x int)",
    ],
)
def test_the_pipeline_role_cannot_write(reader: tuple[str, str], statement: str) -> None:
    database, role = reader
    connection = psycopg2.connect(_dsn(database, role))
    try:
        with pytest.raises(REFUSED), connection.cursor() as cursor:
            cursor.execute(statement)
        connection.rollback()
        # Not even with the read-only default switched off: the grants alone refuse it.
        with pytest.raises(errors.InsufficientPrivilege), connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = off")
            connection.commit()
            cursor.execute(statement)
    finally:
        connection.close()
    with psycopg2.connect(_dsn(database)) as admin, admin.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM upstream.{CLICK_STREAM.table}")
        assert cursor.fetchone()[0] > 0
