"""Peak memory of the source step: the warehouse read, the source gates and the snapshot's
parquet, with the day streamed through a landing file against the day held in memory.

Each measurement runs in a child process of its own and reports its peak RSS (VmHWM) and wall:

- streamed: what `daily_events` does: the driver's record batches (bounded on PostgreSQL)
  normalised into a landing file, sorted by the engine into the snapshot file, and every source
  gate read from that file a column at a time.
- whole: the baseline, the least a step that holds the day holds: the day fetched as one Arrow
  table, normalised, sorted and encoded in memory, with no gate at all (the source step read
  this way, plus its gates' copies, before it streamed).

Both end in the same snapshot bytes (checked). The day comes from the generator, seeded into a
throwaway SQLite file or PostgreSQL schema (`--backend postgres`, at WAREHOUSE_DSN or the local
test server); SQLite's read comes in pages of rowids, PostgreSQL's in batches of about
`postgres_batch_bytes`. Other processes on the machine make timings noisy; memory is the
subject.

    python -m benchmarks.source_read [--impressions 1000000] [--backend sqlite] [--repeats 1]

The last line is `ratio=<streamed peak RSS / whole peak RSS>`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.features import peak_rss_mib

DAY = dt.date(2026, 11, 3)
MODES = ("streamed", "whole")
LOCAL_DSN = "postgresql://127.0.0.1:5432/test"


def _warehouse(backend: str, location: str):
    from resources.warehouse.resource import Warehouse

    if backend == "sqlite":
        return Warehouse(backend="sqlite", sqlite_path=location)
    dsn = os.environ.get("WAREHOUSE_DSN", LOCAL_DSN)
    return Warehouse(backend="postgres", postgres_dsn=dsn, postgres_schema=location)


def child(mode: str, backend: str, location: str, root: Path) -> None:
    from assets.publishing.parquet import to_parquet_bytes
    from assets.quality.gate_config import GateConfig
    from assets.sources.daily_events import (
        evaluate_source_partition,
        source_null_defaults,
        source_range_defaults,
    )
    from contract.source import SOURCE
    from resources.storage.object_store import LocalObjectStore
    from resources.warehouse.backends import normalize_events

    warehouse = _warehouse(backend, location)
    started = time.perf_counter()
    if mode == "streamed":
        store = LocalObjectStore(str(root / f"store-{uuid.uuid4().hex}"))
        thresholds = GateConfig().thresholds(
            source_null_defaults(SOURCE), source_range_defaults(SOURCE)
        )
        with tempfile.TemporaryDirectory(dir=root) as scratch:
            day = warehouse.read_day(DAY, Path(scratch) / "landing.parquet")
            evaluation = evaluate_source_partition(
                DAY.isoformat(),
                day,
                warehouse.read_watermark(),
                warehouse.raw_schema(),
                store,
                thresholds,
            )
            snapshot = evaluation.table
            assert snapshot is not None, [g.gate for g in evaluation.gates if g.blocks]
            rows, sha256 = snapshot.num_rows, snapshot.sha256
    else:
        events = normalize_events(warehouse.read_day_raw(DAY))
        rows, sha256 = events.num_rows, to_parquet_bytes(events).sha256
    wall = time.perf_counter() - started
    print(
        json.dumps({"wall_s": wall, "peak_rss_mib": peak_rss_mib(), "rows": rows, "sha256": sha256})
    )


def measure(mode: str, backend: str, location: str, root: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.source_read", "--child", mode, backend, location],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SOURCE_READ_ROOT": str(root)},
    )
    if done.returncode:
        raise RuntimeError(f"{mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def seed(backend: str, root: Path, impressions: int) -> str:
    from resources.warehouse.backends import PostgresBackend, SqliteBackend
    from scripts.synthetic_events import seed_warehouse

    if backend == "sqlite":
        location = str(root / "warehouse.sqlite")
        seed_warehouse(SqliteBackend(location), DAY, DAY, impressions=impressions)
        return location
    location = f"bench_{uuid.uuid4().hex[:12]}"
    dsn = os.environ.get("WAREHOUSE_DSN", LOCAL_DSN)
    seed_warehouse(PostgresBackend(dsn, schema=location), DAY, DAY, impressions=impressions)
    return location


def drop(backend: str, location: str) -> None:
    if backend == "postgres":
        from resources.warehouse.backends import PostgresBackend

        dsn = os.environ.get("WAREHOUSE_DSN", LOCAL_DSN)
        with PostgresBackend(dsn, schema=location).connect() as connection:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA IF EXISTS {location} CASCADE")
            connection.commit()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3], Path(os.environ["SOURCE_READ_ROOT"]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=1_000_000, help="impressions a day")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each mode, alternated")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        location = seed(args.backend, root, args.impressions)
        try:
            samples: dict[str, list[dict]] = {mode: [] for mode in MODES}
            for repeat in range(args.repeats):
                order = MODES if repeat % 2 == 0 else MODES[::-1]
                for mode in order:
                    samples[mode].append(measure(mode, args.backend, location, root))
        finally:
            drop(args.backend, location)
    hashes = {s["sha256"] for runs in samples.values() for s in runs}
    assert len(hashes) == 1, f"the modes wrote different snapshots: {hashes}"
    rows = samples["streamed"][0]["rows"]
    print(f"backend={args.backend} impressions={args.impressions} events={rows}")
    print(f"{'mode':10s} {'wall_s':>8s} {'peak_rss_mib':>12s}")
    medians = {
        mode: {key: statistics.median(s[key] for s in runs) for key in ("wall_s", "peak_rss_mib")}
        for mode, runs in samples.items()
    }
    for mode, m in medians.items():
        print(f"{mode:10s} {m['wall_s']:8.2f} {m['peak_rss_mib']:12.0f}")
    print(f"ratio={medians['streamed']['peak_rss_mib'] / medians['whole']['peak_rss_mib']:.2f}")


if __name__ == "__main__":
    main()
