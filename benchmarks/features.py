"""Per-partition cost of the feature assets through Dagster vs the same functions in a loop.

Orchestrated: one run of the events snapshot and the three feature assets per daily partition
(what the daily job does), executed in-process on an ephemeral instance; the job is resolved
once, as a code location is loaded once per process (process and code-location start-up are
benchmarks/backfill.py's subject). Bare: the same functions in a plain loop (read the
warehouse, evaluate the gates, write the objects and gate reports), without Dagster. Both write
to their own object store under a temporary directory. The two alternate, each repeat swapping
who goes first, and the medians of --repeats are reported.

    python -m benchmarks.features --days 7 --impressions 5000

The last line is `ratio=<orchestrated / bare>`.
"""

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.features.assets import evaluate_feature_partition, feature_assets
from assets.features.logic import FEATURE_TABLES
from assets.publishing.write_audit_publish import publish_if_passed
from assets.quality.gate_config import GateConfig
from assets.sources.daily_events import (
    daily_events,
    evaluate_source_partition,
    source_null_defaults,
    source_range_defaults,
)
from contract.source import SOURCE
from resources.factory import build_resources
from resources.warehouse.backends import SqliteBackend
from scripts.synthetic_events import seed_warehouse

LAST_DAY = dt.date(2026, 11, 1)
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def daily_job(resources: dict) -> dg.JobDefinition:
    """The events snapshot and the feature assets as one job, with the project's executor."""
    definitions = dg.Definitions(
        assets=[daily_events, *feature_assets],
        resources=resources,
        executor=dg.in_process_executor,
    )
    return definitions.resolve_implicit_global_asset_job_def()


def run_orchestrated(job: dg.JobDefinition, partition_keys: list[str], instance) -> float:
    started = time.perf_counter()
    for key in partition_keys:
        result = job.execute_in_process(
            partition_key=key, instance=instance, run_config=QUIET_CONSOLE
        )
        assert result.success, f"materialization of {key} failed"
    return time.perf_counter() - started


def run_bare(resources: dict, partition_keys: list[str]) -> float:
    warehouse, store = resources["warehouse"], resources["storage"].open_store()
    config = GateConfig()
    source_thresholds = config.thresholds(
        source_null_defaults(SOURCE), source_range_defaults(SOURCE)
    )
    started = time.perf_counter()
    for key in partition_keys:
        raw = warehouse.read_day_raw(dt.date.fromisoformat(key))
        evaluation = evaluate_source_partition(
            key, raw, warehouse.read_watermark(), warehouse.raw_schema(), store, source_thresholds
        )
        assert publish_if_passed(store, "daily_events", "sources", key, evaluation)
        for table in FEATURE_TABLES:
            thresholds = config.thresholds(table.null_defaults(), table.value_ranges)
            evaluation = evaluate_feature_partition(table, key, store, thresholds)
            assert publish_if_passed(store, table.name, "features", key, evaluation)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--impressions", type=int, default=5000, help="impressions per day")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each, alternated")
    args = parser.parse_args(argv)

    first_day = LAST_DAY - dt.timedelta(days=args.days - 1)
    partition_keys = [(first_day + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
    with tempfile.TemporaryDirectory() as tmp, dg.DagsterInstance.ephemeral() as instance:
        roots = {name: Path(tmp, name) for name in ("orchestrated", "bare")}
        for root in roots.values():
            root.mkdir()
        events = seed_warehouse(
            SqliteBackend(str(roots["bare"] / "warehouse.sqlite")),
            first_day,
            LAST_DAY,
            impressions=args.impressions,
        )
        (roots["orchestrated"] / "warehouse.sqlite").write_bytes(
            (roots["bare"] / "warehouse.sqlite").read_bytes()
        )
        job = daily_job(build_resources("local", local_root=roots["orchestrated"]))
        bare_resources = build_resources("local", local_root=roots["bare"])

        # Warm-up (imports, first-call caches) is excluded from both sides.
        run_orchestrated(job, partition_keys[:1], instance)
        run_bare(bare_resources, partition_keys[:1])
        orchestrated, bare = [], []
        for repeat in range(args.repeats):
            if repeat % 2:
                orchestrated.append(run_orchestrated(job, partition_keys, instance))
                bare.append(run_bare(bare_resources, partition_keys))
            else:
                bare.append(run_bare(bare_resources, partition_keys))
                orchestrated.append(run_orchestrated(job, partition_keys, instance))

    per_partition_orchestrated = statistics.median(orchestrated) / args.days
    per_partition_bare = statistics.median(bare) / args.days
    print(f"days={args.days} impressions_per_day={args.impressions} events={events}")
    print(
        f"assets per partition={1 + len(FEATURE_TABLES)} repeats={args.repeats} "
        "(alternated, medians)"
    )
    print(f"orchestrated_s_per_partition={per_partition_orchestrated:.4f}")
    print(f"bare_s_per_partition={per_partition_bare:.4f}")
    print(f"overhead_s_per_partition={per_partition_orchestrated - per_partition_bare:.4f}")
    print(f"ratio={per_partition_orchestrated / per_partition_bare:.2f}")


if __name__ == "__main__":
    main()
