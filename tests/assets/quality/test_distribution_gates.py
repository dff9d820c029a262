"""The distribution and content-identity gates on a second, differently shaped table
(marketplace orders: other column names, types and weekday effects), published through the
real write-audit-publish: each defect class is refused and the approved version stays
byte-identical. And the severity levels, calibration and profiles, on small tables."""

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.partitions import daily_partitions
from assets.publishing.gate_reports import read_published, read_report, trailing_passed_reports
from assets.publishing.write_audit_publish import Evaluation, publish_if_passed
from assets.quality import distribution, replay
from assets.quality.gate_config import GateConfig
from assets.quality.gates import Severity
from benchmarks.second_dataset import (
    CATEGORICAL,
    CONTENT,
    IDENTITY_KEY,
    NUMERIC,
    TIME_COLUMN,
    generate_orders,
)
from resources.storage.object_store import LocalObjectStore

ASSET = "orders"
DAY = dt.date(2026, 11, 5)
HISTORY = [DAY - dt.timedelta(days=n) for n in range(7, 0, -1)]


def _history(store, day: dt.date) -> list[tuple[str, dict]]:
    reports = trailing_passed_reports(store, ASSET, day.isoformat(), daily_partitions, 7)
    return [(report.partition, report.profile) for report in reports if report.profile]


def _evaluate(store, day: dt.date, table: pa.Table, config: GateConfig) -> Evaluation:
    history = _history(store, day)
    drift, replays = config.distribution_thresholds(), config.replay_thresholds()
    return Evaluation(
        table,
        [
            distribution.category_stability(table, history, CATEGORICAL, drift),
            distribution.category_cardinality(table, history, CATEGORICAL, drift),
            distribution.numeric_scale(table, history, NUMERIC, drift),
            replay.content_replay(table, history, CONTENT, TIME_COLUMN, replays),
        ],
        profile={
            distribution.PROFILE_KEY: distribution.distribution_profile(
                table, CATEGORICAL, NUMERIC
            ),
            replay.PROFILE_KEY: replay.content_sketch(table, CONTENT, TIME_COLUMN),
        },
    )


@pytest.fixture(scope="module")
def published_orders(tmp_path_factory) -> Path:
    """Seven clean days of orders and DAY itself, each passed and published."""
    root = tmp_path_factory.mktemp("orders")
    store = LocalObjectStore(root)
    for day in [*HISTORY, DAY]:
        evaluation = _evaluate(store, day, generate_orders(day), GateConfig())
        assert [g.gate for g in evaluation.gates if not g.passed] == [], day
        assert publish_if_passed(store, ASSET, "sources", day.isoformat(), evaluation)
    return root


def _replace(table: pa.Table, name: str, values) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(name), pa.array(values, table[name].type))


def _replayed(source: dt.date) -> pa.Table:
    """`source`'s orders delivered again as DAY's: fresh references, times moved to DAY."""
    table = generate_orders(source)
    shift = pa.scalar((DAY - source).days * 86_400, pa.int64())
    moved = pc.add(table[TIME_COLUMN].cast(pa.int64()), shift)
    table = _replace(table, TIME_COLUMN, moved.cast(table[TIME_COLUMN].type))
    return _replace(table, IDENTITY_KEY, [f"again-{n}" for n in range(table.num_rows)])


def _defects() -> dict[str, tuple[pa.Table, str, list[str]]]:
    clean = generate_orders(DAY)
    regions = pc.utf8_replace_slice(clean["region"], 0, 1, "region-")
    return {
        "payment_collapse": (
            _replace(clean, "payment_method", ["card"] * clean.num_rows),
            "category_stability",
            ["payment_method PSI", "payment_method distinct-count change x4.00"],
        ),
        "region_vocabulary": (
            _replace(clean, "region", regions),
            "category_stability",
            ["region PSI"],
        ),
        # Distances in miles labelled km: every value stays plausible; the spread grows x1.6.
        "distance_unit": (
            _replace(clean, "delivery_km", pc.round(pc.multiply(clean["delivery_km"], 1.609), 1)),
            "numeric_scale",
            ["delivery_km inter-quartile range change x1.6"],
        ),
        "replayed_day": (
            _replayed(DAY - dt.timedelta(days=3)),
            "content_replay",
            [f"This day repeats {DAY - dt.timedelta(days=3)}: 100.0% of the day's"],
        ),
    }


def _objects(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.parquet")}


@pytest.mark.parametrize("case", sorted(_defects()))
def test_each_defect_class_is_refused_on_the_second_schema(case, published_orders, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(published_orders, root)
    store = LocalObjectStore(root)
    approved, _ = read_published(store, ASSET, DAY.isoformat(), daily_partitions)
    before = _objects(root)
    table, gate, details = _defects()[case]

    evaluation = _evaluate(store, DAY, table, GateConfig())
    stored = publish_if_passed(store, ASSET, "sources", DAY.isoformat(), evaluation)

    assert stored is None
    [verdict] = [g for g in evaluation.gates if g.gate == gate]
    assert verdict.blocks and verdict.severity == Severity.ERROR
    messages = " ".join(g.message for g in evaluation.gates if g.blocks)
    for detail in details:
        assert detail in messages, (detail, messages)
    if gate != replay.GATE:
        # The history it compared with, by its days.
        assert f"compared with the last 7 passed days ({HISTORY[0]} to {HISTORY[-1]})" in (
            verdict.message
        )
        assert "passes at <= " in verdict.message and "blocks above " in verdict.message
    report = read_report(store, ASSET, DAY.isoformat(), daily_partitions)
    assert not report.passed and gate in report.blocking
    assert read_published(store, ASSET, DAY.isoformat(), daily_partitions)[0] == approved
    assert _objects(root) == before


def _history_profiles(days=HISTORY) -> list[tuple[str, dict]]:
    return [
        (
            day.isoformat(),
            {
                distribution.PROFILE_KEY: distribution.distribution_profile(
                    generate_orders(day), CATEGORICAL, NUMERIC
                )
            },
        )
        for day in days
    ]


def test_severity_levels_are_run_config():
    history = _history_profiles()
    collapsed = _defects()["payment_collapse"][0]
    default = distribution.category_stability(
        collapsed, history, CATEGORICAL, GateConfig().distribution_thresholds()
    )
    assert default.blocks
    # Raised severe level: the same day only warns, visible but published.
    lenient = GateConfig(psi_severe=100.0).distribution_thresholds()
    warned = distribution.category_stability(collapsed, history, CATEGORICAL, lenient)
    assert not warned.passed and not warned.blocks and warned.severity == Severity.WARN
    assert warned.message.startswith("Moderate drift, reported without blocking")
    # Declared warn-only: severe drift reports without blocking.
    warn_only = GateConfig(warn_only=["category_stability"]).distribution_thresholds()
    reported = distribution.category_stability(collapsed, history, CATEGORICAL, warn_only)
    assert not reported.passed and not reported.blocks


def _colors(shares: tuple[float, float], rows: int = 5000) -> pa.Table:
    red = round(shares[0] * rows)
    return pa.table({"color": ["red"] * red + ["blue"] * (rows - red)})


def _color_history(share_by_day: list[float]) -> list[tuple[str, dict]]:
    return [
        (
            (DAY - dt.timedelta(days=n + 1)).isoformat(),
            {
                distribution.PROFILE_KEY: distribution.distribution_profile(
                    _colors((share, 1 - share)), ["color"], []
                )
            },
        )
        for n, share in enumerate(share_by_day)
    ]


def test_thresholds_grow_with_the_history_own_day_over_day_spread():
    thresholds = GateConfig().distribution_thresholds()
    today = _colors((0.9, 0.1))
    quiet = distribution.category_stability(today, _color_history([0.6] * 7), ["color"], thresholds)
    noisy = distribution.category_stability(
        today, _color_history([0.3, 0.9, 0.3, 0.9, 0.3, 0.9, 0.3]), ["color"], thresholds
    )
    # Against a steady history the day blocks at the floor; against a history that swings
    # this much every day, the same day is within its usual noise.
    assert quiet.blocks and quiet.limit == pytest.approx(0.25)
    assert noisy.passed and noisy.limit > 1.0


def _lognormal_day(seed: int, rows: int, scale: float = 1.0) -> pa.Table:
    values = np.random.default_rng(seed).lognormal(2.5, 0.9, rows) * scale
    return pa.table({"dwell": values})


def _dwell_history(rows: int) -> list[tuple[str, dict]]:
    return [
        (
            (DAY - dt.timedelta(days=n + 1)).isoformat(),
            {
                distribution.PROFILE_KEY: distribution.distribution_profile(
                    _lognormal_day(n, rows), [], ["dwell"]
                )
            },
        )
        for n in range(7)
    ]


def test_a_small_day_must_move_further_than_its_quantiles_chance_spread():
    thresholds = GateConfig().distribution_thresholds()
    history = _dwell_history(2_000)
    # The same change, inter-quartile range x1.7, on a day of 2,000 values and on a day of 20
    # (a rare event's dwell time on a quiet day), against the same steady history.
    small, large = (
        distribution.numeric_scale(
            _spread(_lognormal_day(100, rows), 1.7), history, ["dwell"], thresholds
        )
        for rows in (20, 2_000)
    )
    assert large.blocks and "inter-quartile range change" in large.message
    # Twenty values cannot tell x1.7 from chance: the quartiles' own spread widens the levels
    # (it may warn; it does not block).
    assert not small.blocks, small.message
    assert "expected by chance of 20 values" in small.observed
    # A unit change (seconds to milliseconds) still blocks the small day.
    unit = distribution.numeric_scale(
        _lognormal_day(100, 20, scale=1000.0), history, ["dwell"], thresholds
    )
    assert unit.blocks, unit.message
    # The chance spread is measured in the day's own spread, so the unit change does not
    # widen its own levels a thousandfold: the median shift blocks within a few IQRs.
    shift = re.search(
        r"median shift \(in the history's IQRs\) [\d.]+ \(passes at <= [\d.]+, "
        r"blocks above ([\d.]+)",
        unit.message,
    )
    assert shift and float(shift[1]) < 2.0, unit.message


def _spread(table: pa.Table, factor: float) -> pa.Table:
    """The column's values pulled away from their median by `factor` (the IQR grows by it)."""
    values = table.column("dwell").to_numpy()
    median = np.median(values)
    return pa.table({"dwell": median + (values - median) * factor})


def test_without_enough_history_the_gates_pass_and_say_why():
    history = _history_profiles(HISTORY[:2])
    result = distribution.numeric_scale(
        generate_orders(DAY), history, NUMERIC, GateConfig().distribution_thresholds()
    )
    assert result.passed and "not enough history yet (2 of 3 passed days)" in result.threshold


def test_a_partial_replay_warns_and_names_the_day():
    source = DAY - dt.timedelta(days=2)
    history = [
        (day.isoformat(), {replay.PROFILE_KEY: replay.content_sketch(t, CONTENT, TIME_COLUMN)})
        for day, t in ((d, generate_orders(d)) for d in HISTORY)
    ]
    today, again = generate_orders(DAY), _replayed(source)
    # About a tenth of the day is a second copy of part of an earlier day.
    mixed = pa.concat_tables([today, again.slice(0, today.num_rows // 9)])
    result = replay.content_replay(
        mixed, history, CONTENT, TIME_COLUMN, GateConfig().replay_thresholds()
    )
    assert not result.passed and not result.blocks and result.severity == Severity.WARN
    assert f"Part of this day repeats {source}" in result.message
    assert 0.05 < result.value < 0.2


def test_a_clean_day_does_not_repeat_another():
    history = [
        (day.isoformat(), {replay.PROFILE_KEY: replay.content_sketch(t, CONTENT, TIME_COLUMN)})
        for day, t in ((d, generate_orders(d)) for d in HISTORY)
    ]
    result = replay.content_replay(
        generate_orders(DAY), history, CONTENT, TIME_COLUMN, GateConfig().replay_thresholds()
    )
    assert result.passed and result.value < 0.01


def test_profiles_stay_compact_for_a_wide_vocabulary():
    rng = np.random.default_rng(3)
    table = pa.table(
        {
            "sku": [f"sku-{n}" for n in rng.integers(0, 5000, 50_000)],
            "weight": rng.gamma(2.0, 1.0, 50_000),
            "at": pa.array(rng.integers(0, 86_400, 50_000), pa.int64()).cast(
                pa.timestamp("s", tz="UTC")
            ),
        }
    )
    profile = {
        distribution.PROFILE_KEY: distribution.distribution_profile(table, ["sku"], ["weight"]),
        replay.PROFILE_KEY: replay.content_sketch(table, ["sku", "weight"], "at"),
    }
    skus = profile[distribution.PROFILE_KEY]["categories"]["sku"]
    assert skus["distinct"] == len(pc.unique(table["sku"]))
    assert len(skus["counts"]) == distribution.MAX_CATEGORIES + 1
    assert sum(skus["counts"].values()) == table.num_rows
    assert len(profile[replay.PROFILE_KEY]["smallest"]) == replay.SKETCH_SIZE
    assert len(json.dumps(profile)) < 40_000


def test_history_profiled_before_these_gates_existed_is_no_baseline_yet():
    """Days approved before the distribution profiles were kept hold none: the gates pass and
    say so, and start judging once enough days carry a profile."""
    old = [(day.isoformat(), {"rows": 600}) for day in HISTORY]
    drift, replays = GateConfig().distribution_thresholds(), GateConfig().replay_thresholds()
    today = _defects()["payment_collapse"][0]
    results = [
        distribution.category_stability(today, old, CATEGORICAL, drift),
        distribution.category_cardinality(today, old, CATEGORICAL, drift),
        distribution.numeric_scale(today, old, NUMERIC, drift),
        replay.content_replay(today, old, CONTENT, TIME_COLUMN, replays),
    ]
    assert all(result.passed for result in results)
    assert results[0].threshold == "no watched column has enough history"
    assert "no earlier passed day yet" in results[3].threshold
