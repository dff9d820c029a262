"""False positives of the distribution and content-identity gates on clean days.

Two datasets, each a run of clean days judged the way the source asset judges them (every
day against the profiles of its trailing passed days, default thresholds):
- the example's events (scripts/synthetic_events.py), with a weekday volume cycle on top of
  the generator's day-to-day variation;
- marketplace orders (benchmarks/second_dataset.py): other columns, types and distributions,
  and weekday effects in volume, payment mix and basket size.

Per dataset and gate it prints the days blocked, the days warned, and the margin: over the
clean days, the smallest ratio of the blocking threshold to the statistic (for a gate judging
several columns and statistics, its closest one); 2.0 means the closest clean day stayed at
half of what blocks. The last line is `ratio=`, the smallest margin of all.
"""

import argparse
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from assets.quality import distribution, replay
from assets.quality.gate_config import GateConfig
from benchmarks import second_dataset
from contract.source import CLICK_STREAM
from resources.warehouse.backends import normalize_events
from scripts.synthetic_events import generate_events

# Example volume by weekday (Monday first), as impressions a day.
WEEKDAY_IMPRESSIONS = (1800, 2000, 2000, 2000, 2200, 2600, 2400)


@dataclass(frozen=True)
class Dataset:
    name: str
    generate: Callable[[dt.date], pa.Table]
    categorical: Sequence[str]
    numeric: Sequence[str]
    content: Sequence[str]
    time_column: str


@dataclass
class Tally:
    blocked: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    margin: float = math.inf
    closest: str = "-"


def datasets(scale: float) -> list[Dataset]:
    def example(day: dt.date) -> pa.Table:
        impressions = round(WEEKDAY_IMPRESSIONS[day.weekday()] * scale)
        return normalize_events(generate_events(day, impressions), CLICK_STREAM)

    def orders(day: dt.date) -> pa.Table:
        return second_dataset.generate_orders(day, round(600 * scale))

    return [
        Dataset(
            "example events",
            example,
            CLICK_STREAM.watched_categorical,
            CLICK_STREAM.watched_numeric,
            CLICK_STREAM.replay_content,
            CLICK_STREAM.time_column,
        ),
        Dataset(
            "marketplace orders",
            orders,
            second_dataset.CATEGORICAL,
            second_dataset.NUMERIC,
            second_dataset.CONTENT,
            second_dataset.TIME_COLUMN,
        ),
    ]


def profile(dataset: Dataset, table: pa.Table) -> dict:
    return {
        distribution.PROFILE_KEY: distribution.distribution_profile(
            table, dataset.categorical, dataset.numeric
        ),
        replay.PROFILE_KEY: replay.content_sketch(table, dataset.content, dataset.time_column),
    }


def judge(dataset: Dataset, table: pa.Table, history: list, config: GateConfig) -> list:
    drift, replays = config.distribution_thresholds(), config.replay_thresholds()
    return [
        distribution.category_stability(table, history, dataset.categorical, drift),
        distribution.category_cardinality(table, history, dataset.categorical, drift),
        distribution.numeric_scale(table, history, dataset.numeric, drift),
        replay.content_replay(table, history, dataset.content, dataset.time_column, replays),
    ]


def margin(result, config: GateConfig) -> float:
    """Blocking threshold / statistic for the day's closest column and statistic."""
    if result.gate == replay.GATE:
        return config.replay_share_severe / result.value if result.value else math.inf
    if result.value is None or result.limit is None:
        return math.inf
    return result.limit / result.value if result.value else math.inf


def run(dataset: Dataset, first: dt.date, days: int, history_days: int) -> dict[str, Tally]:
    config = GateConfig()
    passed: list[tuple[str, dict]] = []
    tallies = {gate: Tally() for gate in (*distribution.GATES, replay.GATE)}
    for offset in range(history_days + days):
        day = first + dt.timedelta(days=offset)
        table = dataset.generate(day)
        history = passed[-history_days:][::-1]
        if offset >= history_days:
            results = judge(dataset, table, history, config)
            for result in results:
                tally = tallies[result.gate]
                if result.blocks:
                    tally.blocked.append(f"{day} {result.message}")
                elif not result.passed:
                    tally.warned.append(f"{day} {result.message}")
                day_margin = margin(result, config)
                if day_margin < tally.margin:
                    tally.margin, tally.closest = day_margin, f"{day}: {result.observed}"
            if any(result.blocks for result in results):
                continue  # a blocked day never joins the history, as in the asset
        passed.append((day.isoformat(), profile(dataset, table)))
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="Clean days judged per dataset.")
    parser.add_argument("--first-day", default="2026-03-02", help="First day of the history.")
    parser.add_argument("--history", type=int, default=7, help="Trailing passed days compared.")
    parser.add_argument("--scale", type=float, default=1.0, help="Volume multiplier.")
    parser.add_argument("--verbose", action="store_true", help="Print each warning and block.")
    args = parser.parse_args()
    first = dt.date.fromisoformat(args.first_day)

    smallest, total_days, total_blocked = math.inf, 0, 0
    for dataset in datasets(args.scale):
        tallies = run(dataset, first, args.days, args.history)
        blocked_days = {line.split(" ")[0] for t in tallies.values() for line in t.blocked}
        total_days += args.days
        total_blocked += len(blocked_days)
        print(
            f"{dataset.name}: {args.days} clean days, {len(blocked_days)} blocked "
            f"(false_positive_rate={len(blocked_days) / args.days:.3f})"
        )
        for gate, tally in tallies.items():
            smallest = min(smallest, tally.margin)
            closest = (
                f"margin {tally.margin:8.2f}  closest {tally.closest[:160]}"
                if math.isfinite(tally.margin)
                else "margin      inf  (the statistic was 0 on every clean day)"
            )
            print(
                f"  {gate:22s} blocked {len(tally.blocked):2d}  warned {len(tally.warned):2d}  "
                + closest
            )
            if args.verbose:
                for line in tally.blocked + tally.warned:
                    print(f"    {line[:400]}")
    print(f"false_positive_rate={total_blocked / total_days:.3f} ({total_blocked}/{total_days})")
    print(f"ratio={smallest:.2f}")


if __name__ == "__main__":
    main()
