"""Shared fixtures: a seeded embedded environment, an S3 server on loopback, real Postgres."""

import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.support.environment import (
    POSTGRES_DSN,
    REPO_ROOT,
    SEEDED_FIRST_DAY,
    SEEDED_LAST_DAY,
    postgres_unavailable_reason,
)

# The repository's top-level names are generic; fail loudly if another package shadows them.
for _package in ("assets", "resources", "sensors", "training", "scripts"):
    _module = __import__(_package)
    assert Path(_module.__file__).resolve().parent.parent == REPO_ROOT, (
        f"'{_package}' imported from {_module.__file__}, not from this repository"
    )


# A suite started as a background job inherits SIGINT ignored. Dagster maps SIGTERM to SIGINT's
# disposition when it executes in this process, an ignored disposition survives exec, and so a
# process the tests start afterwards would ignore SIGTERM unless it installs its own handler
# (seen: the SLO exporter outlived its SIGTERM). Python's own Ctrl-C handling restores what a
# foreground run has; tests/scripts/test_slo_exporter.py checks the inherited case itself.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from resources.factory import build_resources  # noqa: E402
from resources.warehouse.backends import PostgresBackend  # noqa: E402
from scripts.synthetic_events import seed_warehouse  # noqa: E402
from tests.support.example import (  # noqa: E402
    example_postgres,
    example_sqlite,
    require_the_example_project,
)


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.sqlite"
    seed_warehouse(example_sqlite(str(path)), SEEDED_FIRST_DAY, SEEDED_LAST_DAY)
    return path


@pytest.fixture
def example_project() -> None:
    """For the tests that run the project's definitions on the example's seeded data."""
    require_the_example_project()


@pytest.fixture
def local_root(tmp_path: Path, seeded_sqlite: Path) -> Path:
    """An embedded environment: a copy of the seeded warehouse and an empty object store."""
    root = tmp_path / "local"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    return root


@pytest.fixture
def local_resources(local_root: Path) -> dict:
    return build_resources("local", local_root=local_root)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from benchmarks.loopback_s3 import LoopbackS3

    server = LoopbackS3().start()
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback S3 server, with the AWS variables pointing at it."""
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "S3_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    bucket = f"features-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return bucket


@pytest.fixture
def postgres_backend() -> Iterator[PostgresBackend]:
    """A throwaway schema in the real Postgres at 127.0.0.1:5432, declared for the example's
    click stream (what `seed_warehouse` fills), dropped afterwards."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    backend = example_postgres(POSTGRES_DSN, schema=f"t_{uuid.uuid4().hex[:12]}")
    try:
        yield backend
    finally:
        with backend.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {backend.schema} CASCADE")
            connection.commit()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """The name of a throwaway database in the real Postgres at 127.0.0.1:5432 (for a Dagster
    instance's storage), dropped afterwards with whatever still holds it open."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    database = f"dagster_t_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_DSN)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    try:
        yield database
    finally:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.close()
