"""Pins the example's data: the example feature tables keep their exact bytes across rewrites
of the feature code.

The goldens (goldens.json) were first taken from the pandas implementation these functions
replaced (FEATURE_CODE_VERSION "1"): a table whose bytes change must come with a bumped code
version, so that Dagster marks the partitions computed by the old code as stale. Each golden
holds the table's digest and one per column, so a failure names the columns that changed.
After an intended change: `make goldens`, and bump the version.
"""

import pytest

from assets.features.assets import FEATURE_CODE_VERSION
from assets.features.logic import CLICK_STREAM_FEATURES, as_table
from tests.example.golden_inputs import DAY, golden_inputs
from tests.example.goldens import digests, load

GOLDENS = load()


@pytest.fixture(scope="module")
def inputs():
    return golden_inputs()


def _changes(expected: dict, actual: dict) -> str:
    changed = [
        c
        for c in expected["columns"]
        if actual["columns"].get(c, expected["columns"][c]) != expected["columns"][c]
    ]
    missing = [c for c in expected["columns"] if c not in actual["columns"]]
    added = [c for c in actual["columns"] if c not in expected["columns"]]
    parts = [
        f"{label}: {', '.join(columns)}"
        for label, columns in (("changed", changed), ("missing", missing), ("new", added))
        if columns
    ]
    return "; ".join(parts) or "same columns, different table layout"


@pytest.mark.parametrize("case", sorted(GOLDENS))
def test_example_feature_table_bytes_are_unchanged(case, inputs):
    events_name, table_name = case.split("/")
    tables = {table.name: table for table in CLICK_STREAM_FEATURES}
    assert table_name in tables, (
        f"the example feature table {table_name!r} is no longer declared in CLICK_STREAM_FEATURES "
        "(assets/features/logic.py): if the example changed on purpose, run `make goldens`"
    )
    actual = digests(as_table(tables[table_name].compute(inputs[events_name], DAY)))
    expected = GOLDENS[case]
    assert actual == expected, (
        f"{table_name} computed from the '{events_name}' events changed its bytes under "
        f"FEATURE_CODE_VERSION {FEATURE_CODE_VERSION!r} ({_changes(expected, actual)}): if the "
        "change of output is intended, bump the version and run `make goldens`; else the "
        "rewrite changed the features."
    )


def test_a_change_names_the_columns_it_touched(inputs):
    table = {t.name: t for t in CLICK_STREAM_FEATURES}["user_daily_features"]
    computed = as_table(table.compute(inputs["small"], DAY))
    changed = computed.set_column(
        1, computed.schema.names[1], computed.column(1).slice(0).take([0] * computed.num_rows)
    )
    message = _changes(
        GOLDENS["small/user_daily_features"],
        digests(changed.drop_columns([computed.schema.names[-1]])),
    )
    assert message == (f"changed: {computed.schema.names[1]}; missing: {computed.schema.names[-1]}")
