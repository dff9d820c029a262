"""The day's upstream events, validated against the source contract and snapshotted.

Every feature reads this snapshot, never the warehouse: the warehouse is read once per day,
the source gates run once, and a feature rebuild sees exactly the rows that passed.
"""

import datetime as dt

import dagster as dg
import pyarrow as pa

from assets.partitions import FEATURE_PARTITIONS_PER_RUN, daily_partitions, day_bounds
from assets.publishing.gate_reports import trailing_passed_reports
from assets.publishing.write_audit_publish import (
    Evaluation,
    gate_check_specs,
    publish_gated_partitions,
    table_schema,
)
from assets.quality import distribution, gates, replay
from assets.quality import history as history_gates
from assets.quality.gate_config import GateConfig
from resources.notifier import Alert, Notifier
from resources.storage.object_store import ObjectStore
from resources.storage.resource import ObjectStorage
from resources.warehouse.backends import normalize_events
from resources.warehouse.errors import WAREHOUSE_ERRORS, is_transient
from resources.warehouse.event_schema import (
    EVENT_COLUMN_DESCRIPTIONS,
    EVENT_TYPES,
    EVENTS_SCHEMA,
)
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
# Two rows with the same content under different event ids are one event delivered twice.
CONTENT_KEY = ("user_id", "item_id", "event_type", "event_time")
# Columns the distribution gates watch. event_type's mix is event_mix's to judge (with its own
# expected-count rule and its own warn_only), so it is not judged a second time here.
WATCHED_CATEGORICAL = tuple(c for c in history_gates.CATEGORICAL_COLUMNS if c != "event_type")
WATCHED_NUMERIC = history_gates.NUMERIC_COLUMNS
# What a replayed delivery repeats: every column but the identity key (event_id) and the date
# (event_date, and event_time's date part; its time of day is compared).
REPLAY_CONTENT = tuple(
    name for name in EVENTS_SCHEMA.names if name not in ("event_id", "event_date", "event_time")
)
REPLAY_TIME = "event_time"
# dwell_seconds exists only for clicks, so most rows legitimately have none.
SOURCE_NULL_DEFAULTS = {
    "price": 0.01,
    "dwell_seconds": 1.0,
    "device": 0.05,
    "country": 0.05,
    "item_category": 0.05,
}
SOURCE_RANGE_DEFAULTS = {
    "user_id": gates.ValueRange(minimum=0),
    "item_id": gates.ValueRange(minimum=0),
    "price": gates.ValueRange(minimum=0, maximum=100_000),
    "dwell_seconds": gates.ValueRange(minimum=0, maximum=86_400),
    "event_type": gates.ValueRange(allowed=EVENT_TYPES),
}


def read_source(
    context: dg.AssetExecutionContext, warehouse: Warehouse, notifier: Notifier, day: dt.date
) -> tuple[pa.Table, dt.datetime | None]:
    """The day's raw rows and the watermark; transient errors retry with backoff, others fail."""
    try:
        return warehouse.read_day_raw(day), warehouse.read_watermark()
    except WAREHOUSE_ERRORS as err:
        attempt = context.retry_number
        if not is_transient(err):
            raise dg.Failure(
                description=(
                    f"{ASSET} partition {day}: the warehouse rejected the read ({err}). Retrying "
                    "cannot fix this; check the events table, its permissions and the query, "
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
    raw: pa.Table,
    loaded_through: dt.datetime | None,
    raw_schema: pa.Schema,
    store: ObjectStore,
    thresholds: gates.GateThresholds,
    drift: distribution.DistributionThresholds | None = None,
    replays: replay.ReplayThresholds | None = None,
) -> Evaluation:
    """Every source gate for one day's raw rows; the normalized events when the schema holds."""
    drift = drift or distribution.DistributionThresholds()
    replays = replays or replay.ReplayThresholds()
    start, end = day_bounds(dt.date.fromisoformat(partition))
    metadata = {
        "source_rows": raw.num_rows,
        "watermark": loaded_through.isoformat() if loaded_through else "none",
    }
    schema = gates.schema_contract(raw, raw_schema, thresholds)
    if schema.blocks:
        skipped = [
            gates.not_evaluated(name, "the schema contract failed", thresholds)
            for name in SOURCE_GATES[1:]
        ]
        return Evaluation(None, [schema, *skipped], metadata)
    events = normalize_events(raw)
    history = trailing_passed_reports(
        store, ASSET, partition, daily_partitions, thresholds.volume_history
    )
    profiles = [report.profile for report in history if report.profile]
    dated = [(report.partition, report.profile) for report in history if report.profile]
    usual_hours = history_gates.usual_hour_share(profiles)
    if len(profiles) < thresholds.volume_min_history:
        usual_hours = None
    return Evaluation(
        events,
        [
            schema,
            gates.completeness(events, thresholds, usual_hours, len(profiles)),
            gates.watermark(loaded_through, end, thresholds),
            gates.volume(events.num_rows, [r.rows for r in history], thresholds),
            gates.null_rate(events, thresholds),
            gates.value_ranges(events, thresholds),
            gates.unique_key(events, ("event_id",), thresholds),
            gates.repeated_events(events, CONTENT_KEY, thresholds),
            gates.within_day(events, start, end, thresholds),
            history_gates.event_mix(events, profiles, thresholds),
            history_gates.category_drift(events, profiles, thresholds),
            history_gates.numeric_drift(events, profiles, thresholds),
            distribution.category_stability(events, dated, WATCHED_CATEGORICAL, drift),
            distribution.category_cardinality(events, dated, WATCHED_CATEGORICAL, drift),
            distribution.numeric_scale(events, dated, WATCHED_NUMERIC, drift),
            replay.content_replay(events, dated, REPLAY_CONTENT, REPLAY_TIME, replays),
        ],
        metadata,
        profile={
            **history_gates.events_profile(events),
            distribution.PROFILE_KEY: distribution.distribution_profile(
                events, WATCHED_CATEGORICAL, WATCHED_NUMERIC
            ),
            replay.PROFILE_KEY: replay.content_sketch(events, REPLAY_CONTENT, REPLAY_TIME),
        },
    )


@dg.asset(
    name=ASSET,
    description="The day's upstream click-stream events, validated and snapshotted for features.",
    group_name="sources",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(FEATURE_PARTITIONS_PER_RUN),
    check_specs=gate_check_specs(ASSET, SOURCE_GATES),
    kinds={"sql", "parquet"},
    tags={"layer": "sources"},
    metadata={
        "dagster/column_schema": table_schema(
            EVENTS_SCHEMA, ("event_id",), EVENT_COLUMN_DESCRIPTIONS
        ),
        "primary_key": "event_id",
    },
)
def daily_events(
    context: dg.AssetExecutionContext,
    config: GateConfig,
    warehouse: Warehouse,
    storage: ObjectStorage,
    notifier: Notifier,
) -> dg.MaterializeResult:
    store = storage.open_store()
    thresholds = config.thresholds(SOURCE_NULL_DEFAULTS, SOURCE_RANGE_DEFAULTS)

    def evaluate(partition: str) -> Evaluation:
        raw, loaded_through = read_source(
            context, warehouse, notifier, dt.date.fromisoformat(partition)
        )
        return evaluate_source_partition(
            partition,
            raw,
            loaded_through,
            warehouse.raw_schema(),
            store,
            thresholds,
            config.distribution_thresholds(),
            config.replay_thresholds(),
        )

    return publish_gated_partitions(
        context,
        asset_name=ASSET,
        layer="sources",
        primary_key=("event_id",),
        column_descriptions=EVENT_COLUMN_DESCRIPTIONS,
        gate_names=SOURCE_GATES,
        store=store,
        notifier=notifier,
        evaluate=evaluate,
        policy=config.publish_policy(),
    )
