"""Daily feature assets: compute each feature table from the validated events snapshot, gate
it, and publish one parquet object per partition at a deterministic key."""

import datetime as dt
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets.features.day_events import distinct_keys
from assets.features.logic import FEATURE_TABLES, FeatureTable
from assets.features.snapshot import RUN_SNAPSHOTS
from assets.partitions import FEATURE_PARTITIONS_PER_RUN, daily_partitions
from assets.publishing.gate_reports import (
    GateReport,
    PartitionNotPublished,
    read_approval,
    trailing_passed_reports,
)
from assets.publishing.parquet import write_parquet_file
from assets.publishing.write_audit_publish import (
    Evaluation,
    gate_check_specs,
    publish_gated_partitions,
    table_schema,
)
from assets.quality import gates
from assets.quality import history as history_gates
from assets.quality.gate_config import GateConfig
from assets.quality.tally import TableTally
from assets.sources.daily_events import ASSET as EVENTS_ASSET
from resources.feature_engine import FeatureEngine, NoEngineOutput, read_output
from resources.notifier import Notifier
from resources.storage.object_store import ObjectStore
from resources.storage.resource import ObjectStorage

# Bump when feature logic changes meaning: Dagster then marks every partition as stale.
FEATURE_CODE_VERSION = "1"
# A feature table's rows: whole, or for a table the size of the day's events its batches.
Computed = pa.Table | pa.RecordBatchReader
FEATURE_GATES = ("schema_contract", "volume", "null_rate", "value_ranges", "unique_key")


def evaluate_feature_partition(
    table: FeatureTable,
    partition: str,
    store: ObjectStore,
    thresholds: gates.GateThresholds,
    run_id: str,
    scratch: Path,
    computed_elsewhere: tuple[Computed, GateReport] | None = None,
) -> Evaluation:
    """Compute one day's feature table from the approved events snapshot and gate it.

    The snapshot is read and decoded once per run (`run_id`), whichever table needs it first;
    or another engine computed the table (`computed_elsewhere`: its rows and the approval of
    the snapshot they came from), and it is gated and encoded alike.
    The table is encoded into a file under `scratch` as its batches come, and gated from a
    tally of them (its key's uniqueness from the file): a table the size of the day's events
    is never whole in memory. The publisher stores that file and removes it.
    """
    if computed_elsewhere is None:
        events, source = RUN_SNAPSHOTS.approved(store, partition, run_id)
        computed = table.compute(events, dt.date.fromisoformat(partition))
    else:
        computed, source = computed_elsewhere
    label = (table.label_column,) if table.label_column else ()
    tally = TableTally(computed.schema, thresholds.value_ranges, label)
    batches = computed if isinstance(computed, pa.RecordBatchReader) else computed.to_batches()
    encoded = write_parquet_file(
        tally.observe(batches), scratch / f"{table.name}-{partition}.parquet", computed.schema
    )
    history = trailing_passed_reports(
        store, table.name, partition, daily_partitions, thresholds.volume_history
    )
    results = [
        gates.schema_contract(computed.schema, tally.valued, table.schema, thresholds),
        gates.volume(tally.rows, [r.rows for r in history], thresholds),
        gates.tallied_null_rate(tally, thresholds),
        gates.tallied_value_ranges(tally, thresholds),
        gates.counted_unique_key(
            tally.rows, distinct_keys(encoded.path, table.primary_key), table.primary_key,
            thresholds,
        ),
    ]  # fmt: skip
    profile = {}
    if table.label_column:
        profiles = [report.profile for report in history if report.profile]
        rate = tally.mean(table.label_column)
        results.append(history_gates.label_rate(rate, profiles, thresholds))
        profile = {"label_rate": rate}
    return Evaluation(
        encoded,
        results,
        {"source_event_rows": source.rows, "source_sha256": source.content_sha256},
        inputs={EVENTS_ASSET: source.content_sha256},
        profile=profile,
    )


def computed_on_engine(
    context: dg.AssetExecutionContext,
    engine: FeatureEngine,
    table: FeatureTable,
    store: ObjectStore,
    scratch: Path,
) -> tuple[dict[str, tuple[Computed, GateReport] | NoEngineOutput], str | None]:
    """The step's days of `table` computed by an engine outside this process, launched once for
    all of them: partition -> its rows and the approval of the snapshot they came from, or why
    the engine wrote no complete table of it (its evaluation fails with that reason, in the
    step's order, as a local day would); and the launch's output, to discard. A day without
    an approved snapshot is left out (its evaluation refuses it as the local one does)."""
    approvals = {}
    for partition in context.partition_keys:
        approval = read_approval(store, EVENTS_ASSET, partition, daily_partitions)
        if approval is not None and approval.passed:
            approvals[partition] = approval
    if not approvals:
        return {}, None
    snapshots = {
        p: (store.reader_uri(a.object_key), a.content_sha256) for p, a in approvals.items()
    }
    output = engine.compute_days(context, [table.name], snapshots, scratch)
    computed: dict[str, tuple[Computed, GateReport] | NoEngineOutput] = {}
    for partition, approval in approvals.items():
        try:
            computed[partition] = (
                read_output(output, table.name, partition, table.schema),
                approval,
            )
        except NoEngineOutput as missing:
            computed[partition] = missing
    return computed, output


def computed_here(table: FeatureTable, engine: FeatureEngine) -> bool:
    """Whether this process computes the table: on the local engine, and for a table that has
    no query (plain Python) whatever the engine."""
    return engine.runs_in_process or table.query is None


def feature_gates(table: FeatureTable) -> tuple[str, ...]:
    """The gates of one feature table: the common ones, plus the label rate where it has one."""
    return (*FEATURE_GATES, "label_rate") if table.label_column else FEATURE_GATES


def build_feature_asset(table: FeatureTable) -> dg.AssetsDefinition:
    @dg.asset(
        name=table.name,
        description=table.description,
        group_name="features",
        deps=[EVENTS_ASSET],
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(FEATURE_PARTITIONS_PER_RUN),
        check_specs=gate_check_specs(table.name, feature_gates(table)),
        # The step stores its table itself (write-audit-publish): no value for an IO manager.
        dagster_type=dg.Nothing,
        code_version=FEATURE_CODE_VERSION,
        kinds={"pyarrow", "parquet"},
        tags={"layer": "features"},
        metadata={
            "dagster/column_schema": table_schema(
                table.schema, table.primary_key, table.column_descriptions
            ),
            "primary_key": ", ".join(table.primary_key),
        },
    )
    def feature_asset(
        context: dg.AssetExecutionContext,
        config: GateConfig,
        storage: ObjectStorage,
        notifier: Notifier,
        feature_engine: FeatureEngine,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        store = storage.open_store()
        thresholds = config.thresholds(table.null_defaults(), table.value_ranges)

        # The encoded partitions' directory: the publisher removes each file once published
        # or refused, this the directory when the step ends, however it ends.
        with tempfile.TemporaryDirectory(prefix=f"{table.name}-") as scratch:
            here = computed_here(table, feature_engine)
            elsewhere, output = (
                ({}, None)
                if here
                else computed_on_engine(context, feature_engine, table, store, Path(scratch))
            )

            def evaluate(partition: str) -> Evaluation:
                if isinstance(elsewhere.get(partition), NoEngineOutput):
                    raise dg.Failure(description=str(elsewhere[partition]), allow_retries=False)
                try:
                    if partition not in elsewhere and not here:
                        # The day had no approved snapshot when the engine launched: refused
                        # with the local engine's reason. One approved since then is computed
                        # here, to the same bytes.
                        RUN_SNAPSHOTS.approved(store, partition, context.run.run_id)
                    return evaluate_feature_partition(
                        table,
                        partition,
                        store,
                        thresholds,
                        context.run.run_id,
                        Path(scratch),
                        elsewhere.get(partition),
                    )
                except PartitionNotPublished as err:
                    raise dg.Failure(description=str(err), allow_retries=False) from err

            try:
                results = publish_gated_partitions(
                    context,
                    asset_name=table.name,
                    layer="features",
                    primary_key=table.primary_key,
                    column_descriptions=table.column_descriptions,
                    gate_names=feature_gates(table),
                    store=store,
                    notifier=notifier,
                    evaluate=evaluate,
                    policy=config.publish_policy(),
                )
            finally:
                if output is not None:
                    feature_engine.discard(output)
        # Handed to Dagster once the scratch files and the engine's output are gone.
        yield from results

    return feature_asset


def build_feature_assets(feature_tables: Sequence[FeatureTable]) -> list[dg.AssetsDefinition]:
    """One asset per declared feature table (the project's FEATURE_TABLES: `feature_assets`)."""
    return [build_feature_asset(table) for table in feature_tables]


feature_assets = build_feature_assets(FEATURE_TABLES)
