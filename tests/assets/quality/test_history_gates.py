"""The history gates judge a day against what its passed days usually look like.

On the example's generated events: the columns each gate judges come from its contract."""

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.features.logic import as_table, training_examples
from assets.quality import gates
from assets.quality import history as history_gates
from assets.quality.gate_config import GateConfig
from assets.quality.tally import TableTally
from contract.source import CLICK_STREAM
from resources.warehouse.backends import normalize_events
from scripts.synthetic_events import generate_events

DAY = dt.date(2026, 11, 5)
HISTORY_DAYS = [DAY - dt.timedelta(days=n) for n in range(1, 8)]
THRESHOLDS = GateConfig().thresholds({}, {})


def _events(day: dt.date) -> pa.Table:
    return normalize_events(generate_events(day), CLICK_STREAM)


def _profile(events: pa.Table) -> dict:
    categorical = (CLICK_STREAM.kind_column, *CLICK_STREAM.watched_categorical)
    return history_gates.events_profile(
        events, CLICK_STREAM.time_column, categorical, CLICK_STREAM.watched_numeric
    )


def _event_mix(events, profiles, thresholds):
    return history_gates.event_mix(
        events, CLICK_STREAM.kind_column, CLICK_STREAM.kinds, profiles, thresholds
    )


def _category_drift(events, profiles, thresholds):
    categorical = (CLICK_STREAM.kind_column, *CLICK_STREAM.watched_categorical)
    return history_gates.category_drift(events, categorical, profiles, thresholds)


def _numeric_drift(events, profiles, thresholds):
    return history_gates.numeric_drift(events, CLICK_STREAM.watched_numeric, profiles, thresholds)


def _completeness(events, thresholds, *history):
    return gates.completeness(events, CLICK_STREAM.time_column, thresholds, *history)


@pytest.fixture(scope="module")
def profiles() -> list[dict]:
    return [_profile(_events(day)) for day in HISTORY_DAYS]


@pytest.fixture(scope="module")
def today() -> pa.Table:
    return _events(DAY)


def test_a_normal_day_passes_every_history_gate(today, profiles):
    usual = history_gates.usual_hour_share(profiles)
    results = [
        _completeness(today, THRESHOLDS, usual),
        gates.repeated_events(
            today, ("user_id", "item_id", "event_type", "event_time"), THRESHOLDS
        ),
        _event_mix(today, profiles, THRESHOLDS),
        _category_drift(today, profiles, THRESHOLDS),
        _numeric_drift(today, profiles, THRESHOLDS),
    ]
    assert [r.gate for r in results if not r.passed] == []


def test_without_enough_history_the_gates_pass_and_say_why(today, profiles):
    result = _event_mix(today, profiles[:2], THRESHOLDS)
    assert result.passed and "not enough history yet (2 of 3" in result.threshold


def test_a_broken_click_logger_fails_the_event_mix(today, profiles):
    impressions = today.filter(pc.equal(today.column("event_type"), "impression"))
    result = _event_mix(impressions, profiles, THRESHOLDS)
    assert not result.passed and result.blocks
    assert "click 0.000 vs usual" in result.message


def _label_rate(examples: pa.Table) -> float | None:
    return TableTally.of_table(examples, {}, ("label",)).mean("label")


def test_the_label_rate_gate_catches_labels_that_vanish():
    history = [
        {"label_rate": _label_rate(as_table(training_examples(_events(day), day)))}
        for day in HISTORY_DAYS
    ]
    examples = as_table(training_examples(_events(DAY), DAY))
    assert history_gates.label_rate(_label_rate(examples), history, THRESHOLDS).passed
    no_clicks = examples.set_column(
        examples.schema.get_field_index("label"),
        "label",
        pa.array([0] * examples.num_rows, examples.schema.field("label").type),
    )
    result = history_gates.label_rate(_label_rate(no_clicks), history, THRESHOLDS)
    assert not result.passed and result.observed == "label rate 0.0000"
    assert "x the median" in result.threshold
    assert "over the last 7 passed days" in result.threshold


def test_a_late_tail_with_a_trickle_per_hour_is_incomplete(today, profiles):
    hour = pc.hour(today.column("event_time"))
    tail = pc.greater_equal(hour, 18)
    # Keep every 33rd row of hours 18-23 (3 %): each hour still has some events.
    keep = pc.or_(
        pc.invert(tail), pc.equal(pc.bit_wise_and(pa.array(range(today.num_rows)), 31), 0)
    )
    late = today.filter(keep)
    assert set(pc.hour(late.column("event_time")).to_pylist()) == set(range(24))
    usual = history_gates.usual_hour_share(profiles)
    result = _completeness(late, THRESHOLDS, usual, len(profiles))
    assert not result.passed and result.observed == "18 of 24 hours"
    assert "Only a trickle in hours [18, 19, 20, 21, 22, 23]" in result.message
    # Each thin hour with its observed and usual share, and the history they come from.
    assert f"18h {late_share(late, 18):.2%} vs {usual[18]:.2%}" in result.message
    assert "over the last 7 passed days" in result.message
    assert "over the last 7 passed days" in result.threshold
    # No empty clause: every hour has some events.
    assert "No events in hours" not in result.message
    # Without history an hour with any event counts: the old rule, said in the threshold.
    assert _completeness(late, THRESHOLDS, None).passed


def late_share(events: pa.Table, hour: int) -> float:
    hours = pc.hour(events.column("event_time"))
    return pc.sum(pc.equal(hours, hour)).as_py() / events.num_rows


def test_an_empty_tail_names_only_the_empty_hours(today, profiles):
    early = today.filter(pc.less(pc.hour(today.column("event_time")), 18))
    usual = history_gates.usual_hour_share(profiles)
    result = _completeness(early, THRESHOLDS, usual, len(profiles))
    assert not result.passed
    assert "No events in hours [18, 19, 20, 21, 22, 23] (UTC)." in result.message
    assert "trickle" not in result.message and "[]" not in result.message


def test_the_history_gates_name_the_days_they_compared_with(today, profiles):
    for gate in (
        _event_mix,
        _category_drift,
        _numeric_drift,
    ):
        result = gate(today, profiles, THRESHOLDS)
        assert "over the last 7 passed days" in result.threshold, (gate, result.threshold)
    impressions = today.filter(pc.equal(today.column("event_type"), "impression"))
    mix = _event_mix(impressions, profiles, THRESHOLDS)
    assert "usual: the median share over the last 7 passed days" in mix.message


def test_nan_and_infinite_values_are_invalid_in_every_float_column(today):
    prices = today.column("price").to_pylist()
    prices[::10] = [float("nan")] * len(prices[::10])
    prices[1] = float("inf")
    broken = today.set_column(
        today.schema.get_field_index("price"), "price", pa.array(prices, pa.float64())
    )
    result = gates.value_ranges(broken, GateConfig().thresholds({}, {}))
    assert not result.passed
    assert f"price: {len(prices[::10]) + 1} NaN or infinite values" in result.observed


def test_rows_repeated_under_new_ids_fail(today):
    twice = today.slice(0, int(today.num_rows * 0.4))
    renamed = twice.set_column(
        0,
        today.schema.field("event_id"),
        pc.binary_join_element_wise(twice.column("event_id"), "r", "-"),
    )
    loaded = pa.concat_tables([today, renamed])
    assert gates.unique_key(loaded, ("event_id",), THRESHOLDS).passed
    result = gates.repeated_events(
        loaded, ("user_id", "item_id", "event_type", "event_time"), THRESHOLDS
    )
    assert not result.passed and "part of the day was loaded twice" in result.message


def test_drift_warns_by_default_and_blocks_when_configured(today, profiles):
    prices = pc.multiply(today.column("price"), 100.0)
    drifted = today.set_column(today.schema.get_field_index("price"), "price", prices)
    result = _numeric_drift(drifted, profiles, THRESHOLDS)
    assert not result.passed and not result.blocks
    assert result.severity == gates.Severity.WARN and "price (shift" in result.message
    blocking = GateConfig(blocking_drift=["numeric_drift"]).thresholds({}, {})
    assert _numeric_drift(drifted, profiles, blocking).blocks

    ios_only = today.set_column(
        today.schema.get_field_index("device"), "device", pa.array(["ios"] * today.num_rows)
    )
    categories = _category_drift(ios_only, profiles, THRESHOLDS)
    assert not categories.passed and "device" in categories.message


def test_event_mix_does_not_judge_types_too_rare_to_measure():
    """At 200 impressions a day a handful of purchases varies by chance beyond any band; the
    gate judges only types expected at least EVENT_MIX_MIN_EXPECTED times, and still catches
    missing clicks."""
    small = [
        _profile(normalize_events(generate_events(day, 200), CLICK_STREAM)) for day in HISTORY_DAYS
    ]
    for offset in range(30):
        day = DAY + dt.timedelta(days=offset)
        events = normalize_events(generate_events(day, 200), CLICK_STREAM)
        assert _event_mix(events, small, THRESHOLDS).passed, day
    impressions = events.filter(pc.equal(events.column("event_type"), "impression"))
    result = _event_mix(impressions, small, THRESHOLDS)
    assert not result.passed and "click 0.000" in result.message
    assert "purchase" not in result.threshold.split("(")[1]


def test_completeness_does_not_judge_hours_too_quiet_to_measure():
    """At 200 impressions a day a quiet hour holds one or two events: any event counts there."""
    small = [
        _profile(normalize_events(generate_events(day, 200), CLICK_STREAM)) for day in HISTORY_DAYS
    ]
    usual = history_gates.usual_hour_share(small)
    for offset in range(30):
        day = DAY + dt.timedelta(days=offset)
        events = normalize_events(generate_events(day, 200), CLICK_STREAM)
        assert _completeness(events, THRESHOLDS, usual).passed, day
