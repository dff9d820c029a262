"""Write-audit-publish for daily assets: evaluate gates per partition, publish only what passes.

Per partition of the run (one day, or a batch of days in a backfill run):
- every gate's verdict is logged as an asset check evaluation against that partition;
- passing: the parquet object is written, then its gate report (the commit point);
- failing a blocking (ERROR) gate: only the report is written, the previous object stays,
  the notifier is told, and the run fails without retries once every partition is evaluated,
  so nothing downstream runs in it. Partitions of the batch that passed keep their published
  objects and are recorded as materialized.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import dagster as dg
import pyarrow as pa

from assets.partitions import daily_partitions
from assets.publishing.gate_reports import GateReport, write_report
from assets.publishing.keys import partition_object_key
from assets.publishing.parquet import to_parquet_bytes
from assets.quality.gates import NOT_EVALUATED, GateResult
from resources.notifier import Alert, Notifier
from resources.storage.object_store import ObjectStore, StoredObject


@dataclass
class Evaluation:
    """What an asset computed for one partition: the table (None if it could not be built),
    the gate verdicts, the content hashes of the inputs it was computed from, and extra
    metadata worth recording."""

    table: pa.Table | None
    gates: list[GateResult]
    metadata: dict = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)


def gate_check_specs(asset_name: str, gate_names: Sequence[str]) -> list[dg.AssetCheckSpec]:
    """One blocking check per gate; evaluations are recorded per partition by the asset."""
    return [
        dg.AssetCheckSpec(
            name=gate,
            asset=asset_name,
            blocking=True,
            description=f"Quality gate '{gate}', evaluated per daily partition before publishing.",
        )
        for gate in gate_names
    ]


def table_schema(schema: pa.Schema, primary_key: Sequence[str]) -> dg.TableSchema:
    """The Arrow schema as Dagster's TableSchema, so the UI shows columns and types."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=str(f.type),
                constraints=dg.TableColumnConstraints(
                    nullable=f.nullable,
                    unique=tuple(primary_key) == (f.name,),
                    other=["primary key"] if f.name in primary_key else [],
                ),
            )
            for f in schema
        ]
    )


def _check_evaluation(asset_name: str, partition: str, gate: GateResult) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset_name),
        check_name=gate.gate,
        passed=gate.passed,
        partition=partition,
        blocking=True,
        severity=dg.AssetCheckSeverity(str(gate.severity)),
        description=gate.message,
        metadata={"observed": gate.observed, "threshold": gate.threshold},
    )


def publish_if_passed(
    store: ObjectStore,
    asset_name: str,
    layer: str,
    partition: str,
    evaluation: Evaluation,
    run_id: str = "",
) -> StoredObject | None:
    """Write the object and then its passing report; or, when a blocking gate failed, only a
    failing report (the previous object stays). Returns the object written, if any."""
    object_key = partition_object_key(asset_name, partition, daily_partitions, layer=layer)
    failures = [gate for gate in evaluation.gates if gate.blocks]
    report = GateReport(
        asset=asset_name,
        partition=partition,
        passed=not failures and evaluation.table is not None,
        gates=[g.to_dict() for g in evaluation.gates],
        object_key=object_key,
        run_id=run_id,
        blocking=[g.gate for g in failures],
        inputs=evaluation.inputs,
    )
    if not report.passed or evaluation.table is None:
        write_report(store, report, daily_partitions)
        return None
    stored = store.put_bytes(object_key, to_parquet_bytes(evaluation.table).data)
    write_report(
        store,
        replace(report, content_sha256=stored.sha256, rows=evaluation.table.num_rows),
        daily_partitions,
    )
    return stored


def publish_gated_partitions(
    context: dg.AssetExecutionContext,
    *,
    asset_name: str,
    layer: str,
    primary_key: Sequence[str],
    gate_names: Sequence[str],
    store: ObjectStore,
    notifier: Notifier,
    evaluate: Callable[[str], Evaluation],
) -> dg.MaterializeResult:
    published: dict[str, dict] = {}
    verdicts: dict[str, list[GateResult]] = {}
    blocked: dict[str, list[GateResult]] = {}
    for partition in context.partition_keys:
        evaluation = evaluate(partition)
        verdicts[partition] = evaluation.gates
        for gate in evaluation.gates:
            context.log_event(_check_evaluation(asset_name, partition, gate))
        stored = publish_if_passed(
            store, asset_name, layer, partition, evaluation, run_id=context.run.run_id
        )
        if stored is None:
            failures = [gate for gate in evaluation.gates if gate.blocks]
            blocked[partition] = failures
            for gate in failures:
                notifier.send(
                    Alert(
                        kind="gate_failed",
                        asset=asset_name,
                        partition=partition,
                        gate=gate.gate,
                        observed=gate.observed,
                        threshold=gate.threshold,
                        summary=gate.message,
                        run_id=context.run.run_id,
                    )
                )
            continue
        rows = evaluation.table.num_rows
        published[partition] = {
            "dagster/row_count": rows,
            "dagster/column_schema": table_schema(evaluation.table.schema, primary_key),
            "object_uri": dg.MetadataValue.path(stored.uri),
            "object_key": stored.key,
            "content_sha256": stored.sha256,
            "size_bytes": stored.size,
            "gate_warnings": sum(1 for g in evaluation.gates if not g.passed),
            **evaluation.metadata,
        }
        context.log.info(f"{asset_name} [{partition}]: {rows} rows -> {stored.uri}")

    if blocked:
        # The step fails, so Dagster records no materialization from the return value: record
        # the partitions of this batch that did pass explicitly.
        for partition, metadata in published.items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=asset_name, partition=partition, metadata=metadata
                )
            )
        raise dg.Failure(
            description=_blocked_message(asset_name, layer, blocked),
            metadata={"blocked_partitions": sorted(blocked)},
            allow_retries=False,
        )

    for partition, metadata in published.items():
        context.add_asset_metadata(metadata, partition_key=partition)
    # Dagster keeps one data version per run output, so only a single-partition run can carry
    # the content hash as its data version; batched runs record content_sha256 per partition.
    only = next(iter(published.values())) if len(published) == 1 else None
    return dg.MaterializeResult(
        data_version=dg.DataVersion(only["content_sha256"]) if only else None,
        check_results=[run_level_result(gate, verdicts) for gate in gate_names],
    )


def run_level_result(gate: str, verdicts: dict[str, list[GateResult]]) -> dg.AssetCheckResult:
    """One gate's summary over the run's partitions, as it happened: passed everywhere, or
    failed with WARN severity on the partitions where a warn-only gate did not hold. (A gate
    that blocked a partition fails the step before any summary is written.)"""
    failed = {
        partition: result
        for partition, results in verdicts.items()
        for result in results
        if result.gate == gate and not result.passed
    }
    if not failed:
        return dg.AssetCheckResult(
            check_name=gate,
            passed=True,
            description=f"passed for all {len(verdicts)} partition(s) of this run",
            metadata={"partitions": ", ".join(verdicts), "failed_partitions": 0},
        )
    return dg.AssetCheckResult(
        check_name=gate,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"warn-only gate failed on {len(failed)} of {len(verdicts)} partition(s): "
            + "; ".join(
                f"{partition} observed {result.observed} (threshold {result.threshold})"
                for partition, result in sorted(failed.items())
            )
        ),
        metadata={
            "partitions": ", ".join(verdicts),
            "failed_partitions": len(failed),
            "failed": ", ".join(sorted(failed)),
        },
    )


def _blocked_message(asset_name: str, layer: str, blocked: dict[str, list[GateResult]]) -> str:
    lines = [f"{asset_name}: {len(blocked)} partition(s) blocked by quality gates, not published:"]
    for partition, failures in sorted(blocked.items()):
        key = partition_object_key(asset_name, partition, daily_partitions, layer=layer)
        evaluated = [gate for gate in failures if gate.observed != NOT_EVALUATED]
        for gate in evaluated:
            lines.append(
                f"- {partition} {gate.gate}: observed {gate.observed}; threshold {gate.threshold}."
                f" {gate.message}"
            )
        if len(evaluated) < len(failures):
            lines.append(f"  ({len(failures) - len(evaluated)} later gates were not evaluated.)")
        lines.append(f"  The last good object at {key} (if any) is unchanged.")
    return "\n".join(lines)
