"""Each gate on small tables: what passes, what fails, and what it says."""

import datetime as dt

import pyarrow as pa
import pytest

from assets.partitions import day_bounds
from assets.quality import gates
from assets.quality.gate_config import GateConfig
from assets.quality.tally import TableTally
from contract.source import CLICK_STREAM
from scripts.synthetic_events import generate_events

DAY = dt.date(2026, 11, 5)
DEFAULT = gates.GateThresholds()


def test_volume_has_no_band_before_enough_history():
    assert gates.volume(10, [], DEFAULT).passed
    assert gates.volume(10, [1000, 1000], DEFAULT).passed
    assert not gates.volume(0, [], DEFAULT).passed


def test_volume_band_around_trailing_median():
    history = [1000, 1100, 900, 1000]
    assert gates.volume(1000, history, DEFAULT).passed
    low = gates.volume(400, history, DEFAULT)
    assert not low.passed and "outside [500, 2000]" in low.message
    assert not gates.volume(2500, history, DEFAULT).passed


def _schema_contract(table: pa.Table, expected: pa.Schema) -> gates.GateResult:
    valued = TableTally.of_table(table, {}).valued
    return gates.schema_contract(table.schema, valued, expected, DEFAULT)


def test_schema_contract_reports_a_diff_and_ignores_all_null_column_types():
    expected = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.float64())])
    drifted = pa.table({"a": ["x"], "d": [1], "c": [1.0]})
    result = _schema_contract(drifted, expected)
    assert not result.passed
    assert result.observed == (
        "missing column b; unexpected column d; a: expected int64, got string"
    )
    untyped_nulls = pa.table({"a": [1], "b": pa.array([None], pa.int64()), "c": [1.0]})
    assert _schema_contract(untyped_nulls, expected).passed


def test_null_rate_uses_per_column_limits():
    table = pa.table({"a": [1, None, 3, 4], "b": [None, None, None, None]})
    thresholds = gates.GateThresholds(max_null_rate={"a": 0.5, "b": 0.5})
    result = gates.null_rate(table, thresholds)
    assert not result.passed and result.observed == "b=100.0%"
    assert gates.null_rate(table, gates.GateThresholds(max_null_rate={"a": 0.5, "b": 1})).passed


def test_value_ranges_bounds_and_categories():
    table = pa.table({"price": [1.0, -2.0, None], "kind": ["click", "bogus", None]})
    thresholds = gates.GateThresholds(
        value_ranges={
            "price": gates.ValueRange(minimum=0),
            "kind": gates.ValueRange(allowed=("click", "impression")),
        }
    )
    result = gates.value_ranges(table, thresholds)
    assert not result.passed
    assert result.observed == "price: 1 values < 0; kind: 1 values outside ['click', 'impression']"


def test_unique_key_counts_duplicates():
    table = pa.table({"k": [1, 2, 2, 3, 3, 3]})
    result = gates.unique_key(table, ("k",), DEFAULT)
    assert not result.passed and result.observed == "3 duplicate rows of 6"
    assert gates.unique_key(pa.table({"k": pa.array([], pa.int64())}), ("k",), DEFAULT).passed


def test_completeness_within_day_and_watermark_on_generated_events():
    events = generate_events(DAY, impressions=300)
    start, end = day_bounds(DAY)
    assert events.schema == CLICK_STREAM.schema
    assert gates.completeness(events, CLICK_STREAM.time_column, DEFAULT).passed
    assert gates.within_day(events, CLICK_STREAM.time_column, start, end, DEFAULT).passed
    assert gates.watermark(end, end, DEFAULT).passed
    assert not gates.watermark(end - dt.timedelta(seconds=1), end, DEFAULT).passed
    assert not gates.watermark(None, end, DEFAULT).passed
    later = start + dt.timedelta(hours=1)
    shifted = gates.within_day(events, CLICK_STREAM.time_column, later, end, DEFAULT)
    assert not shifted.passed


def test_warn_only_reports_without_blocking():
    thresholds = GateConfig(warn_only=["volume"]).thresholds({}, {})
    result = gates.volume(0, [], thresholds)
    assert not result.passed and not result.blocks
    assert result.severity == gates.Severity.WARN


def test_config_merges_over_asset_defaults():
    defaults = {"price": gates.ValueRange(minimum=0, maximum=10)}
    thresholds = GateConfig(value_max={"price": 50}, max_null_rate={"price": 0.2}).thresholds(
        {"price": 0.0, "device": 0.05}, defaults
    )
    assert thresholds.value_ranges["price"] == gates.ValueRange(minimum=0, maximum=50)
    assert thresholds.max_null_rate == {"price": 0.2, "device": 0.05}


def test_schema_contract_cannot_be_downgraded():
    with pytest.raises(ValueError, match="schema_contract cannot be warn-only"):
        GateConfig(warn_only=["schema_contract"]).thresholds({}, {})
