"""Retry calibration: transient warehouse errors retry with growing waits; others fail once."""

import datetime as dt
import random
import threading
import time

import dagster as dg
import psycopg2
import pytest

from contract.source import CLICK_STREAM
from resources.notifier import Notifier
from resources.storage.resource import LocalObjectStorage
from resources.warehouse.errors import is_transient, retry_delay
from resources.warehouse.resource import Warehouse
from scripts.synthetic_events import seed_warehouse
from tests.support.environment import POSTGRES_DSN, free_port
from tests.support.example import example_daily_events

DAY = "2026-11-05"
SEEDED_DAY = dt.date.fromisoformat(DAY)


class OperationalError(Exception):
    """Shaped like the DB-API errors ADBC raises (name, message, optional SQLSTATE)."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError("refused"), True),
        (ConnectionResetError("reset by peer"), True),
        (TimeoutError("read timed out"), True),
        (TimeoutError("timed out"), True),
        (OperationalError("terminating connection due to administrator command", "57P01"), True),
        (OperationalError("could not connect to server", "08006"), True),
        # Raised mid-stream through Arrow's C stream interface: the driver's message only.
        (
            OSError(
                "[libpq] Execution error [PGRES_FATAL_ERROR]: FATAL:  terminating connection "
                "due to administrator command"
            ),
            True,
        ),
        (OSError("[libpq] Execution error: relation does not exist"), False),
        (OSError("terminating connection"), False),
        (OperationalError("Failed to connect: Connection refused"), True),
        (OperationalError("database is locked"), True),
        (OperationalError('relation "events" does not exist', "42P01"), False),
        (OperationalError('column "device" does not exist', "42703"), False),
        (OperationalError("permission denied for table events", "42501"), False),
        (ValueError("schema contract violated"), False),
        (KeyError("device"), False),
    ],
)
def test_error_classification(error, transient):
    assert is_transient(error) is transient


def test_backoff_grows_on_every_attempt_whatever_the_jitter():
    rng = random.Random(0)
    for _ in range(1000):
        waits = [retry_delay(attempt, 1.0, 0.25, rng) for attempt in range(3)]
        assert waits[0] < waits[1] < waits[2]
        assert 0.75 <= waits[0] <= 1.25


def _materialize(warehouse, tmp_path, instance):
    resources = {
        "warehouse": warehouse,
        "storage": LocalObjectStorage(root=str(tmp_path / "store")),
        "notifier": Notifier(),
    }
    return dg.materialize(
        [example_daily_events],
        partition_key=DAY,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def _events(instance, run_id, event_type):
    return [e.dagster_event for e in instance.all_logs(run_id, of_type=event_type)]


def test_exhausted_retries_alert_and_fail(tmp_path, caplog):
    refused = Warehouse(
        backend="postgres",
        postgres_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        max_retries=2,
        retry_base_delay_seconds=0.05,
    )
    instance = dg.DagsterInstance.ephemeral()
    with caplog.at_level("ERROR", logger="ml_template.alerts"):
        result = _materialize(refused, tmp_path, instance)
    assert not result.success
    assert len(_events(instance, result.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 2
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "unreachable after 3 attempts" in message and DAY in message
    assert any(
        "retries_exhausted" in r.getMessage() and DAY in r.getMessage() for r in caplog.records
    )


def test_a_bug_in_our_code_surfaces_as_itself(tmp_path, seeded_sqlite, monkeypatch):
    def broken_read(self, day, landing, contract):
        raise TypeError("unsupported operand in our own query builder")

    monkeypatch.setattr(Warehouse, "read_day", broken_read)
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(
        Warehouse(backend="sqlite", sqlite_path=str(seeded_sqlite)), tmp_path, instance
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "TypeError" in error.cls_name or "TypeError" in error.to_string()
    assert "rejected the read" not in error.to_string()
    assert not _events(instance, result.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)


class _BackendKiller(threading.Thread):
    """Terminates the warehouse read of `schema` with pg_terminate_backend, `kills` times."""

    def __init__(self, schema: str, kills: int):
        super().__init__(daemon=True)
        self.schema, self.kills, self.killed = schema, kills, 0
        self.stop = threading.Event()

    def run(self) -> None:
        # Autocommit and no `with connection`: inside a transaction pg_stat_activity is a frozen
        # snapshot and the read would never show up.
        connection = psycopg2.connect(POSTGRES_DSN)
        connection.autocommit = True
        # The example's day read, as the backend spells it.
        read = f"%FROM {self.schema}.{CLICK_STREAM.table} WHERE {CLICK_STREAM.date_column}%"
        # A terminated backend stays 'active' in pg_stat_activity until it has exited, which
        # on a busy machine can outlast the next poll: each backend is killed (and counted)
        # once, so `kills` counts reads killed, each its own attempt.
        terminated: set[int] = set()
        with connection.cursor() as cursor:
            while len(terminated) < self.kills and not self.stop.is_set():
                cursor.execute(
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE %s "
                    "AND NOT pid = ANY(%s::int[])",
                    (read, sorted(terminated)),
                )
                terminated.update(pid for pid, done in cursor.fetchall() if done)
                self.killed = len(terminated)
                time.sleep(0.05)
        connection.close()


def _slow_view(backend, sleep_seconds: float, columns: str = "data.*") -> None:
    """Put a slow view in front of the events table, so a read is in flight long enough to be
    killed, the way a heavy warehouse query would be."""
    with backend.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {backend.schema}.events RENAME TO events_data")
        cursor.execute(
            f"CREATE VIEW {backend.schema}.events AS SELECT {columns} "
            f"FROM {backend.schema}.events_data AS data "
            f"CROSS JOIN (SELECT pg_sleep({sleep_seconds})) AS slow"
        )
        connection.commit()


@pytest.mark.postgres
def test_connection_killed_mid_read_twice_succeeds_on_attempt_three(postgres_backend, tmp_path):
    seed_warehouse(postgres_backend, SEEDED_DAY, SEEDED_DAY, impressions=200)
    _slow_view(postgres_backend, sleep_seconds=1.0)
    warehouse = Warehouse(
        backend="postgres",
        postgres_dsn=postgres_backend.dsn,
        postgres_schema=postgres_backend.schema,
        retry_base_delay_seconds=0.5,
    )
    killer = _BackendKiller(postgres_backend.schema, kills=2)
    killer.start()
    instance = dg.DagsterInstance.ephemeral()
    try:
        result = _materialize(warehouse, tmp_path, instance)
    finally:
        killer.stop.set()
        killer.join(timeout=10)

    assert result.success, [
        e.step_failure_data.error.message for e in result.get_step_failure_events()
    ]
    assert killer.killed == 2
    retries = _events(instance, result.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    waits = [event.event_specific_data.seconds_to_wait for event in retries]
    print(f"retry waits after pg_terminate_backend: {waits}")
    assert len(waits) == 2 and waits[0] < waits[1]
    starts = _events(instance, result.run_id, dg.DagsterEventType.STEP_START)
    restarts = _events(instance, result.run_id, dg.DagsterEventType.STEP_RESTARTED)
    assert len(starts) + len(restarts) == 3
    warnings = [
        entry
        for entry in instance.all_logs(result.run_id)
        if "transient warehouse error" in (entry.user_message or "")
    ]
    assert len(warnings) == 2


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        ("rename", "missing column country; unexpected column country_code"),
        ("drop_table", "Retrying cannot fix this"),
    ],
)
def test_schema_errors_fail_on_the_first_attempt(postgres_backend, tmp_path, drift, expected):
    seed_warehouse(postgres_backend, SEEDED_DAY, SEEDED_DAY, impressions=200)
    if drift == "rename":
        columns = ", ".join(
            "data.country AS country_code" if name == "country" else f"data.{name}"
            for name in postgres_backend.raw_schema().names
        )
        _slow_view(postgres_backend, sleep_seconds=0, columns=columns)
    else:
        with postgres_backend.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {postgres_backend.schema}.events")
            connection.commit()
    warehouse = Warehouse(
        backend="postgres",
        postgres_dsn=postgres_backend.dsn,
        postgres_schema=postgres_backend.schema,
        retry_base_delay_seconds=0.05,
    )
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(warehouse, tmp_path, instance)
    assert not result.success
    assert _events(instance, result.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert len(_events(instance, result.run_id, dg.DagsterEventType.STEP_START)) == 1
    assert expected in result.get_step_failure_events()[0].step_failure_data.error.message
