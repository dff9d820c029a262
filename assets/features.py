"""Daily feature assets: read a day of events, compute a feature table, publish one parquet
object per partition at a deterministic key."""

import warnings

import dagster as dg
import pyarrow as pa

from assets.feature_logic import FEATURE_TABLES, FeatureTable
from assets.object_keys import partition_object_key
from assets.parquet_bytes import to_parquet_bytes
from assets.partitions import FEATURE_PARTITIONS_PER_RUN, daily_partitions
from resources.storage import ObjectStorage
from resources.warehouse import Warehouse

# Bump when feature logic changes meaning: Dagster then marks every partition as stale.
FEATURE_CODE_VERSION = "1"


def table_schema(schema: pa.Schema, primary_key: tuple[str, ...]) -> dg.TableSchema:
    """The Arrow schema as Dagster's TableSchema, so the UI shows columns and types."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=str(field.type),
                constraints=dg.TableColumnConstraints(
                    nullable=field.nullable,
                    unique=primary_key == (field.name,),
                    other=["primary key"] if field.name in primary_key else [],
                ),
            )
            for field in schema
        ]
    )


def _materialize_partitions(
    context: dg.AssetExecutionContext,
    table: FeatureTable,
    warehouse: Warehouse,
    storage: ObjectStorage,
) -> dg.MaterializeResult:
    store = storage.open_store()
    column_schema = table_schema(table.schema, table.primary_key)
    published = []
    # One read, one computation and one object per day, even inside a batched backfill run, so
    # a range run writes exactly the bytes single-partition runs write.
    for partition_key in context.partition_keys:
        object_key = partition_object_key(table.name, partition_key, daily_partitions)
        window = daily_partitions.time_window_for_partition_key(partition_key)
        events = warehouse.read_events(window.start, window.end)
        features = table.compute(events, window.start.date())
        parquet = to_parquet_bytes(features)
        stored = store.put_bytes(object_key, parquet.data)
        published.append(stored)
        context.add_asset_metadata(
            {
                "dagster/row_count": features.num_rows,
                "dagster/column_schema": column_schema,
                "source_event_rows": events.num_rows,
                "object_uri": dg.MetadataValue.path(stored.uri),
                "object_key": object_key,
                "content_sha256": stored.sha256,
                "size_bytes": stored.size,
            },
            partition_key=partition_key,
        )
        context.log.info(
            f"{table.name} [{partition_key}]: {features.num_rows} rows -> {stored.uri}"
        )
    # Dagster keeps one data version per run output, so only a single-partition run can carry
    # the content hash as its data version; batched runs record content_sha256 per partition.
    single = published[0] if len(published) == 1 else None
    return dg.MaterializeResult(data_version=dg.DataVersion(single.sha256) if single else None)


def build_feature_asset(table: FeatureTable) -> dg.AssetsDefinition:
    # BackfillPolicy is beta in dagster 1.13; batching backfills is a deliberate choice here,
    # so its BetaWarning is silenced for this declaration only.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy")
        return _declare_feature_asset(table)


def _declare_feature_asset(table: FeatureTable) -> dg.AssetsDefinition:
    @dg.asset(
        name=table.name,
        description=table.description,
        group_name="features",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(FEATURE_PARTITIONS_PER_RUN),
        code_version=FEATURE_CODE_VERSION,
        kinds={"pandas", "parquet"},
        tags={"layer": "features"},
        metadata={
            "dagster/column_schema": table_schema(table.schema, table.primary_key),
            "primary_key": ", ".join(table.primary_key),
        },
    )
    def feature_asset(
        context: dg.AssetExecutionContext, warehouse: Warehouse, storage: ObjectStorage
    ) -> dg.MaterializeResult:
        return _materialize_partitions(context, table, warehouse, storage)

    return feature_asset


feature_assets = [build_feature_asset(table) for table in FEATURE_TABLES]
