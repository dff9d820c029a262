"""The real source asset, built from the second schema's contract: its gates pass clean days,
block each kind of bad delivery (row-level, history, distribution and replay gates) with a
message naming the day and the gate, and write-audit-publish keeps the last approved version
of the day byte-identical after a refusal.

Every defect is made through the contract-built backend (or names the contract's columns),
never through the example's names."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from assets.partitions import daily_partitions, partition_range_tags
from assets.publishing.gate_reports import read_published, read_report
from assets.sources.daily_events import ASSET, SOURCE_GATES, build_daily_events
from resources.factory import build_resources
from resources.warehouse.backends import (
    PostgresBackend,
    SqliteBackend,
    day_range,
    normalize_events,
    read_day_raw,
    replace_day,
    set_watermark,
)
from resources.warehouse.resource import Warehouse
from tests.adapt.page_views import PAGE_VIEWS, generate_page_views, seed_page_views
from tests.support.environment import POSTGRES_DSN, postgres_unavailable_reason

FIRST_DAY = dt.date(2026, 10, 28)
BAD_DAY = dt.date(2026, 11, 5)
REPLAYED_DAY = dt.date(2026, 11, 1)
PAGE_VIEW_EVENTS = build_daily_events(PAGE_VIEWS)


def _backend(root: Path) -> SqliteBackend:
    return SqliteBackend(str(root / "warehouse.sqlite"), PAGE_VIEWS)


def _replace_column(table: pa.Table, name: str, values) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(name), pa.array(values, table[name].type))


def _renamed(table: pa.Table, prefix: str) -> pa.Table:
    key = PAGE_VIEWS.key[0]
    return _replace_column(
        table, key, [f"{prefix}{value}" for value in table.column(key).to_pylist()]
    )


def _day(root: Path) -> pa.Table:
    return normalize_events(read_day_raw(_backend(root), BAD_DAY), PAGE_VIEWS)


def positives_vanish(root: Path) -> None:
    day = _day(root)
    kinds = day.column(PAGE_VIEWS.kind_column)
    replace_day(
        _backend(root), BAD_DAY, day.filter(pc.not_equal(kinds, PAGE_VIEWS.label.positive_kind))
    )


def watched_category_collapses(root: Path) -> None:
    day, column = _day(root), PAGE_VIEWS.watched_categorical[0]
    counts = pc.value_counts(day.column(column).drop_null()).to_pylist()
    most = max(counts, key=lambda entry: entry["counts"])["values"]
    replace_day(_backend(root), BAD_DAY, _replace_column(day, column, [most] * day.num_rows))


def numeric_unit_changes(root: Path) -> None:
    day, column = _day(root), PAGE_VIEWS.watched_numeric[0]
    replace_day(
        _backend(root), BAD_DAY, _replace_column(day, column, pc.divide(day[column], 1000.0))
    )


def earlier_day_replayed(root: Path) -> None:
    """An earlier day delivered again with fresh keys and times moved onto the bad day."""
    earlier = normalize_events(read_day_raw(_backend(root), REPLAYED_DAY), PAGE_VIEWS)
    shift = pa.scalar(day_range(BAD_DAY)[0] - day_range(REPLAYED_DAY)[0])
    time = PAGE_VIEWS.time_column
    moved = _replace_column(earlier, time, pc.add(earlier[time], shift))
    replace_day(_backend(root), BAD_DAY, _renamed(moved, "replay-"))


def late_tail(root: Path) -> None:
    day = _day(root)
    early = pc.less(pc.hour(day.column(PAGE_VIEWS.time_column)), 18)
    replace_day(_backend(root), BAD_DAY, day.filter(early))


def loaded_twice_with_new_keys(root: Path) -> None:
    day = _day(root)
    again = _renamed(day.slice(0, int(day.num_rows * 0.4)), "again-")
    replace_day(_backend(root), BAD_DAY, pa.concat_tables([day, again]))


def undeclared_kind(root: Path) -> None:
    day = _day(root)
    kinds = day.column(PAGE_VIEWS.kind_column).to_pylist()
    kinds[::10] = ["hover"] * len(kinds[::10])
    replace_day(_backend(root), BAD_DAY, _replace_column(day, PAGE_VIEWS.kind_column, kinds))


def watermark_short(root: Path) -> None:
    set_watermark(_backend(root), day_range(BAD_DAY)[0] + dt.timedelta(hours=18))


def column_dropped(root: Path) -> None:
    with sqlite3.connect(root / "warehouse.sqlite") as connection:
        connection.execute(
            f"ALTER TABLE {PAGE_VIEWS.table} DROP COLUMN {PAGE_VIEWS.watched_categorical[-1]}"
        )


CORPUS: dict[str, tuple[Callable[[Path], None], str]] = {
    "positives_vanish": (positives_vanish, "event_mix"),
    "watched_category_collapses": (watched_category_collapses, "category_stability"),
    "numeric_unit_changes": (numeric_unit_changes, "numeric_scale"),
    "earlier_day_replayed": (earlier_day_replayed, "content_replay"),
    "late_tail": (late_tail, "completeness"),
    "loaded_twice_with_new_keys": (loaded_twice_with_new_keys, "repeated_events"),
    "undeclared_kind": (undeclared_kind, "value_ranges"),
    "watermark_short": (watermark_short, "watermark"),
    "column_dropped": (column_dropped, "schema_contract"),
}


@pytest.fixture(scope="module")
def published_history(tmp_path_factory) -> Path:
    """Every page-view day up to BAD_DAY passed its gates and was published."""
    root = tmp_path_factory.mktemp("page_views")
    seed_page_views(_backend(root), FIRST_DAY, BAD_DAY)
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags(FIRST_DAY.isoformat(), BAD_DAY.isoformat())
    assert dg.materialize([PAGE_VIEW_EVENTS], resources=resources, tags=tags).success
    return root


def _objects(root: Path) -> dict[str, bytes]:
    store = root / "object-store"
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in store.rglob("*.parquet")}


def test_the_asset_is_the_source_asset_built_from_the_second_contract():
    spec = PAGE_VIEW_EVENTS.specs_by_key[dg.AssetKey(ASSET)]
    assert spec.description.startswith(PAGE_VIEWS.description)
    assert spec.metadata["primary_key"] == ", ".join(PAGE_VIEWS.key)
    columns = spec.metadata["dagster/column_schema"].columns
    assert [c.name for c in columns] == PAGE_VIEWS.schema.names
    assert {check.name for check in PAGE_VIEW_EVENTS.check_specs} == set(SOURCE_GATES)


def test_clean_days_pass_every_gate_and_publish_the_contracts_rows(published_history):
    store = build_resources("local", local_root=published_history)["storage"].open_store()
    day = FIRST_DAY
    while day <= BAD_DAY:
        report = read_report(store, ASSET, day.isoformat(), daily_partitions)
        assert report is not None and report.passed, (day, report and report.blocking)
        day += dt.timedelta(days=1)
    snapshot, _ = read_published(store, ASSET, BAD_DAY.isoformat(), daily_partitions)
    published = pq.read_table(io.BytesIO(snapshot))
    assert published.schema.names == PAGE_VIEWS.schema.names
    assert published.cast(PAGE_VIEWS.schema).equals(
        normalize_events(generate_page_views(BAD_DAY), PAGE_VIEWS)
    )


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_a_bad_delivery_is_refused_and_the_approved_day_stays_byte_identical(
    case, published_history, tmp_path
):
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    defect, expected_gate = CORPUS[case]
    defect(root)
    before = _objects(root)
    resources = build_resources("local", local_root=root)
    store = resources["storage"].open_store()
    partition = BAD_DAY.isoformat()
    approved, _ = read_published(store, ASSET, partition, daily_partitions)

    result = dg.materialize(
        [PAGE_VIEW_EVENTS], partition_key=partition, resources=resources, raise_on_error=False
    )

    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert f"- {partition} {expected_gate}" in message, message
    assert "is unchanged and stays in use" in message
    report = read_report(store, ASSET, partition, daily_partitions)
    assert report is not None and expected_gate in report.blocking
    assert read_published(store, ASSET, partition, daily_partitions)[0] == approved
    assert _objects(root) == before


def test_the_days_label_rate_follows_the_contracts_label_definition(tmp_path):
    seed_page_views(_backend(tmp_path), BAD_DAY, BAD_DAY)
    result = dg.materialize(
        [PAGE_VIEW_EVENTS],
        partition_key=BAD_DAY.isoformat(),
        resources=build_resources("local", local_root=tmp_path),
    )
    [materialization] = result.asset_materializations_for_node(ASSET)
    kinds = generate_page_views(BAD_DAY).column(PAGE_VIEWS.kind_column).to_pylist()
    label = PAGE_VIEWS.label
    expected = kinds.count(label.positive_kind) / kinds.count(label.exposure_kind)
    assert materialization.metadata["label_rate"].value == pytest.approx(expected)
    assert 0 < expected < 1


@pytest.mark.postgres
def test_postgres_and_sqlite_warehouses_publish_the_same_snapshot(tmp_path):
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    partition = BAD_DAY.isoformat()
    postgres = PostgresBackend(POSTGRES_DSN, f"t_{uuid.uuid4().hex[:12]}", PAGE_VIEWS)
    snapshots = []
    try:
        for name, backend in (("sqlite", _backend(tmp_path / "sqlite")), ("postgres", postgres)):
            root = tmp_path / name
            root.mkdir(exist_ok=True)
            seed_page_views(backend, BAD_DAY, BAD_DAY)
            resources = build_resources("local", local_root=root)
            if name == "postgres":
                resources["warehouse"] = Warehouse(
                    backend="postgres", postgres_dsn=POSTGRES_DSN, postgres_schema=postgres.schema
                )
            dg.materialize([PAGE_VIEW_EVENTS], partition_key=partition, resources=resources)
            store = resources["storage"].open_store()
            snapshots.append(read_published(store, ASSET, partition, daily_partitions)[0])
    finally:
        with postgres.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {postgres.schema} CASCADE")
            connection.commit()
    assert snapshots[0] == snapshots[1]
    assert pq.read_table(io.BytesIO(snapshots[0])).num_rows == generate_page_views(BAD_DAY).num_rows
