"""The day's upstream rows, validated against the source contract and snapshotted.

Every feature reads this snapshot, never the warehouse: the warehouse is read once per day,
the source gates run once, and a feature rebuild sees exactly the rows that passed. Which table,
which columns and what each gate judges come from a `SourceContract` (`contract/source.py`):
`build_daily_events(contract)` builds the asset for any declared source, `daily_events` is the
one for the project's `SOURCE`.
"""

import contextlib
import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets.features.day_events import FILE_MEMORY_LIMIT, distinct_keys, sorted_by_key
from assets.partitions import FEATURE_PARTITIONS_PER_RUN, daily_partitions, day_bounds
from assets.publishing.gate_reports import trailing_passed_reports
from assets.publishing.parquet import ROW_GROUP_ROWS, write_parquet_file
from assets.publishing.write_audit_publish import (
    Evaluation,
    gate_check_specs,
    publish_gated_partitions,
    table_schema,
)
from assets.quality import distribution, gates, replay
from assets.quality import history as history_gates
from assets.quality.gate_config import GateConfig
from assets.quality.tally import TableTally
from assets.sources.snapshot_columns import SnapshotColumns
from contract.source import SOURCE, SourceContract
from resources.notifier import Alert, Notifier
from resources.storage.object_store import ObjectStore
from resources.storage.resource import ObjectStorage
from resources.warehouse.day_read import DayRows, landing_schema
from resources.warehouse.errors import WAREHOUSE_ERRORS, is_transient
from resources.warehouse.resource import Warehouse

ASSET = "daily_events"
SOURCE_GATES = (
    "schema_contract",
    "completeness",
    "watermark",
    "volume",
    "null_rate",
    "value_ranges",
    "unique_key",
    "repeated_events",
    "within_day",
    "event_mix",
    "category_drift",
    "numeric_drift",
    *distribution.GATES,
    replay.GATE,
)


def source_null_defaults(contract: SourceContract) -> dict[str, float]:
    """The null-rate gate's default maximum per column, as the contract declares it."""
    return contract.null_tolerances


def source_range_defaults(contract: SourceContract) -> dict[str, gates.ValueRange]:
    """The value-range gate's default rule per column, as the contract declares it: numeric
    bounds first, then enumerated domains (the order the gate's report lists them in)."""
    ranged = sorted(contract.ranged_columns, key=lambda c: c.allowed is not None)
    return {
        c.name: gates.ValueRange(minimum=c.minimum, maximum=c.maximum, allowed=c.allowed)
        for c in ranged
    }


def read_source(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    notifier: Notifier,
    day: dt.date,
    landing: Path,
    contract: SourceContract = SOURCE,
) -> tuple[DayRows, dt.datetime | None]:
    """The day's rows (streamed into the file `landing`) and the watermark; transient errors,
    also mid-stream, retry with backoff, others fail."""
    try:
        return warehouse.read_day(day, landing, contract), warehouse.read_watermark(contract)
    except WAREHOUSE_ERRORS as err:
        attempt = context.retry_number
        if not is_transient(err):
            raise dg.Failure(
                description=(
                    f"{ASSET} partition {day}: the warehouse rejected the read ({err}). Retrying "
                    f"cannot fix this; check the {contract.table} table, its permissions and the "
                    "query, "
                    "then re-run the partition."
                ),
                allow_retries=False,
            ) from err
        if attempt < warehouse.max_retries:
            wait = warehouse.retry_delay(attempt)
            context.log.warning(
                f"{ASSET} partition {day}: transient warehouse error on attempt {attempt + 1} "
                f"({err}); retry {attempt + 1} of {warehouse.max_retries} in {wait:.2f}s."
            )
            raise dg.RetryRequested(
                max_retries=warehouse.max_retries, seconds_to_wait=wait
            ) from err
        summary = (
            f"The warehouse stayed unreachable after {attempt + 1} attempts ({err}). Check the "
            "database's health, then re-run the partition."
        )
        notifier.send(
            Alert(
                kind="retries_exhausted",
                asset=ASSET,
                partition=day.isoformat(),
                summary=summary,
                run_id=context.run.run_id,
            )
        )
        raise dg.Failure(
            description=f"{ASSET} partition {day}: {summary}", allow_retries=False
        ) from err


def evaluate_source_partition(
    partition: str,
    day: DayRows,
    loaded_through: dt.datetime | None,
    raw_schema: pa.Schema,
    store: ObjectStore,
    thresholds: gates.GateThresholds,
    drift: distribution.DistributionThresholds | None = None,
    replays: replay.ReplayThresholds | None = None,
    contract: SourceContract = SOURCE,
) -> Evaluation:
    """Every source gate for one day's landed rows; the snapshot when the schema holds.

    The landed rows are sorted by key in the engine and encoded into the snapshot file (beside
    the landing file, which goes), tallied on the way; the gates then read the snapshot a
    column at a time and count distinct keys in the engine, so the day is never whole in
    memory.

    Each gate judges the columns the contract names: the key, the content key, the time
    column, the event kinds, the watched columns. The kind column's mix is event_mix's to
    judge (with its own expected-count rule and its own warn_only), so the distribution gates
    watch only the declared watched columns.
    """
    drift = drift or distribution.DistributionThresholds()
    replays = replays or replay.ReplayThresholds()
    date = dt.date.fromisoformat(partition)
    start, end = day_bounds(date)
    metadata = {
        "source_rows": day.rows,
        "watermark": loaded_through.isoformat() if loaded_through else "none",
    }
    schema = gates.schema_contract(day.schema, day.valued, raw_schema, thresholds)
    if schema.blocks or day.landed is None:
        skipped = [
            gates.not_evaluated(name, "the schema contract failed", thresholds)
            for name in SOURCE_GATES[1:]
        ]
        return Evaluation(None, [schema, *skipped], metadata)
    # A null where the contract requires a value cannot be encoded as required: that day's
    # snapshot declares every column nullable, and the null-rate gate refuses it.
    snapshot_schema = landing_schema(contract) if day.required_with_nulls else contract.schema
    tally = TableTally(snapshot_schema, thresholds.value_ranges)
    try:
        with contextlib.closing(
            sorted_by_key(day.landed, contract.key, snapshot_schema)
        ) as ordered:
            snapshot = write_parquet_file(
                tally.observe(ordered),
                day.landed.with_name(f"{ASSET}-{date.isoformat()}.parquet"),
                snapshot_schema,
            )
    finally:
        day.landed.unlink()
    events = SnapshotColumns(snapshot)
    time_column = contract.time_column
    categorical, numeric = contract.watched_categorical, contract.watched_numeric
    # The history profile and category_drift (warn-only PSI) also cover the kind column.
    profiled = (contract.kind_column, *categorical)
    content = contract.replay_content
    # A row group at a time: a batch's distinct strings are hashed once each, in Python.
    sketch = replay.batched_content_sketch(
        events.batches([time_column, *content], ROW_GROUP_ROWS),
        events.num_rows,
        content,
        time_column,
    )
    label = contract.label
    rate = history_gates.kind_rate(
        events, contract.kind_column, label.positive_kind, label.exposure_kind
    )
    if rate is not None:
        # The day's positives per exposure as the upstream delivered them, plotted per day.
        metadata["label_rate"] = rate
    history = trailing_passed_reports(
        store, ASSET, partition, daily_partitions, thresholds.volume_history
    )
    profiles = [report.profile for report in history if report.profile]
    dated = [(report.partition, report.profile) for report in history if report.profile]
    usual_hours = history_gates.usual_hour_share(profiles)
    if len(profiles) < thresholds.volume_min_history:
        usual_hours = None
    return Evaluation(
        snapshot,
        [
            schema,
            gates.completeness(events, time_column, thresholds, usual_hours, len(profiles)),
            gates.watermark(loaded_through, end, thresholds),
            gates.volume(events.num_rows, [r.rows for r in history], thresholds),
            gates.tallied_null_rate(tally, thresholds),
            gates.tallied_value_ranges(tally, thresholds),
            gates.counted_unique_key(
                tally.rows,
                distinct_keys(snapshot.path, contract.key, FILE_MEMORY_LIMIT),
                contract.key,
                thresholds,
            ),
            gates.counted_repeated_events(
                tally.rows,
                distinct_keys(snapshot.path, contract.content_key, FILE_MEMORY_LIMIT),
                contract.content_key,
                thresholds,
            ),
            gates.within_day(events, time_column, start, end, thresholds),
            history_gates.event_mix(
                events, contract.kind_column, contract.kinds, profiles, thresholds
            ),
            history_gates.category_drift(events, profiled, profiles, thresholds),
            history_gates.numeric_drift(events, numeric, profiles, thresholds),
            distribution.category_stability(events, dated, categorical, drift),
            distribution.category_cardinality(events, dated, categorical, drift),
            distribution.numeric_scale(events, dated, numeric, drift),
            replay.sketched_content_replay(sketch, dated, content, time_column, replays),
        ],
        metadata,
        profile={
            **history_gates.events_profile(events, time_column, profiled, numeric),
            distribution.PROFILE_KEY: distribution.distribution_profile(
                events, categorical, numeric
            ),
            replay.PROFILE_KEY: sketch,
        },
    )


def build_daily_events(contract: SourceContract = SOURCE) -> dg.AssetsDefinition:
    """The source asset for one declared upstream table (the asset key stays `daily_events`)."""
    null_defaults = source_null_defaults(contract)
    range_defaults = source_range_defaults(contract)

    @dg.asset(
        name=ASSET,
        description=f"{contract.description}, validated and snapshotted for features.",
        group_name="sources",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(FEATURE_PARTITIONS_PER_RUN),
        check_specs=gate_check_specs(ASSET, SOURCE_GATES),
        # The step stores its snapshot itself (write-audit-publish): no value for an IO manager.
        dagster_type=dg.Nothing,
        kinds={"sql", "parquet"},
        tags={"layer": "sources"},
        metadata={
            "dagster/column_schema": table_schema(
                contract.schema, contract.key, contract.descriptions
            ),
            "primary_key": ", ".join(contract.key),
        },
    )
    def daily_events(
        context: dg.AssetExecutionContext,
        config: GateConfig,
        warehouse: Warehouse,
        storage: ObjectStorage,
        notifier: Notifier,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        store = storage.open_store()
        thresholds = config.thresholds(null_defaults, range_defaults)

        # The days' landing and snapshot files: the publisher removes each snapshot once
        # published or refused, this the directory when the step ends, however it ends.
        with tempfile.TemporaryDirectory(prefix=f"{ASSET}-") as scratch:

            def evaluate(partition: str) -> Evaluation:
                # A date before it names a file.
                date = dt.date.fromisoformat(partition)
                landing = Path(scratch) / f"landing-{date.isoformat()}.parquet"
                day, loaded_through = read_source(
                    context, warehouse, notifier, date, landing, contract
                )
                return evaluate_source_partition(
                    partition,
                    day,
                    loaded_through,
                    warehouse.raw_schema(contract),
                    store,
                    thresholds,
                    config.distribution_thresholds(),
                    config.replay_thresholds(),
                    contract,
                )

            results = publish_gated_partitions(
                context,
                asset_name=ASSET,
                layer="sources",
                primary_key=contract.key,
                column_descriptions=contract.descriptions,
                gate_names=SOURCE_GATES,
                store=store,
                notifier=notifier,
                evaluate=evaluate,
                policy=config.publish_policy(),
            )
        # Handed to Dagster once the day's landing and snapshot files are gone.
        yield from results

    return daily_events


daily_events = build_daily_events()
