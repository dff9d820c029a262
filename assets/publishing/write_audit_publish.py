"""Write-audit-publish for daily assets: evaluate gates per partition, publish only what passes.

Per partition of the run (one day, or a batch of days in a backfill run):
- every gate's verdict is logged as an asset check evaluation against that partition;
- passing: the table is written as a new content-addressed version, then the audit report,
  then the approval pointer (the commit point), then superseded versions beyond the
  retention are deleted;
- failing a blocking (ERROR) gate: only the audit report is written. The approved version
  stays in service (or, with `on_refused_redelivery: take_offline`, the pointer records the
  day as offline), the notifier is told, and the run fails without retries once every
  partition is evaluated, so nothing downstream runs in it. Partitions of the batch that
  passed keep their published versions and are recorded as materialized.

A kill at any point leaves the previous approved version readable: no write touches its
bytes, and the pointer moves in one atomic write.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import dagster as dg
import pyarrow as pa

from assets.partitions import daily_partitions
from assets.publishing.gate_reports import (
    GateReport,
    read_approval,
    version_key,
    write_approval,
    write_report,
)
from assets.publishing.parquet import to_parquet_bytes
from assets.quality.gates import NOT_EVALUATED, GateResult
from resources.notifier import Alert, Notifier
from resources.storage.object_store import ObjectStore, StoredObject


@dataclass(frozen=True)
class PublishPolicy:
    """What a refused re-delivery does to an approved day, and how many versions are kept."""

    on_refused_redelivery: Literal["keep_approved", "take_offline"] = "keep_approved"
    keep_versions: int = 2


@dataclass
class Evaluation:
    """What an asset computed for one partition: the table (None if it could not be built),
    the gate verdicts, the content hashes of the inputs it was computed from, extra metadata
    worth recording, and the profile the history gates compare later days with."""

    table: pa.Table | None
    gates: list[GateResult]
    metadata: dict = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    profile: dict = field(default_factory=dict)


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


def table_schema(
    schema: pa.Schema, primary_key: Sequence[str], descriptions: Mapping[str, str]
) -> dg.TableSchema:
    """The Arrow schema as Dagster's TableSchema, so the UI shows columns, types and meaning."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=str(f.type),
                description=descriptions.get(f.name),
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
        description=f"{partition}: {gate.message}",
        metadata=gate_metadata(partition, gate),
    )


def gate_metadata(partition: str, gate: GateResult) -> dict[str, dg.MetadataValue]:
    """A gate's verdict for one day as check metadata: the day, the words, and the numbers
    (floats, so the UI plots them over the execution history)."""
    metadata = {
        "partition": dg.MetadataValue.text(partition),
        "observed": dg.MetadataValue.text(gate.observed),
        "threshold": dg.MetadataValue.text(gate.threshold),
    }
    if gate.value is not None:
        metadata["observed_value"] = dg.MetadataValue.float(float(gate.value))
    if gate.limit is not None:
        metadata["threshold_value"] = dg.MetadataValue.float(float(gate.limit))
    return metadata


def publish_if_passed(
    store: ObjectStore,
    asset_name: str,
    layer: str,
    partition: str,
    evaluation: Evaluation,
    run_id: str = "",
    policy: PublishPolicy = PublishPolicy(),
) -> StoredObject | None:
    """Publish a new version and move the pointer to it; or, when a blocking gate failed,
    record the refusal and leave the approved version as the policy says. Returns the object
    written, if any."""
    failures = [gate for gate in evaluation.gates if gate.blocks]
    report = GateReport(
        asset=asset_name,
        partition=partition,
        passed=not failures and evaluation.table is not None,
        gates=[g.to_dict() for g in evaluation.gates],
        object_key="",
        run_id=run_id,
        blocking=[g.gate for g in failures],
        inputs=evaluation.inputs,
    )
    approved = read_approval(store, asset_name, partition, daily_partitions)
    if not report.passed or evaluation.table is None:
        write_report(store, report, daily_partitions)
        if policy.on_refused_redelivery == "take_offline" and approved and approved.passed:
            # Taken offline: the pointer records the refusal and still lists every version, so
            # retention deletes them only after a later delivery is approved.
            withdrawn = replace(report, superseded=_versions(approved))
            write_approval(store, withdrawn, daily_partitions)
        return None
    parquet = to_parquet_bytes(evaluation.table)
    key = version_key(asset_name, partition, daily_partitions, layer, parquet.sha256)
    stored = store.put_bytes(key, parquet.data)
    report = replace(
        report,
        object_key=key,
        content_sha256=stored.sha256,
        rows=evaluation.table.num_rows,
        profile=evaluation.profile,
    )
    write_report(store, report, daily_partitions)
    kept = _kept(approved, policy, current=key) if approved else []
    write_approval(store, replace(report, superseded=kept), daily_partitions)
    for old in _versions(approved):
        if old != key and old not in kept:
            store.delete(old)
    return stored


def _versions(approval: GateReport | None) -> list[str]:
    """Every version the pointer knows of, newest first."""
    if approval is None:
        return []
    current = [approval.object_key] if approval.object_key else []
    return [*current, *approval.superseded]


def _kept(approval: GateReport, policy: PublishPolicy, current: str = "") -> list[str]:
    """The earlier versions retention keeps besides `current`, newest first."""
    earlier = [key for key in dict.fromkeys(_versions(approval)) if key != current]
    return earlier[: policy.keep_versions - 1]


def publish_gated_partitions(
    context: dg.AssetExecutionContext,
    *,
    asset_name: str,
    layer: str,
    primary_key: Sequence[str],
    column_descriptions: Mapping[str, str],
    gate_names: Sequence[str],
    store: ObjectStore,
    notifier: Notifier,
    evaluate: Callable[[str], Evaluation],
    policy: PublishPolicy,
) -> dg.MaterializeResult:
    published: dict[str, dict] = {}
    verdicts: dict[str, list[GateResult]] = {}
    blocked: dict[str, list[GateResult]] = {}
    fallbacks: dict[str, str] = {}
    for partition in context.partition_keys:
        evaluation = evaluate(partition)
        verdicts[partition] = evaluation.gates
        for gate in evaluation.gates:
            context.log_event(_check_evaluation(asset_name, partition, gate))
        stored = publish_if_passed(
            store, asset_name, layer, partition, evaluation, context.run.run_id, policy
        )
        if stored is None:
            failures = [gate for gate in evaluation.gates if gate.blocks]
            blocked[partition] = failures
            fallbacks[partition] = _fallback(store, asset_name, partition)
            for gate in failures:
                notifier.send(
                    Alert(
                        kind="gate_failed",
                        asset=asset_name,
                        partition=partition,
                        gate=gate.gate,
                        observed=gate.observed,
                        threshold=gate.threshold,
                        summary=f"{gate.message} {fallbacks[partition]}",
                        run_id=context.run.run_id,
                    )
                )
            continue
        rows = evaluation.table.num_rows
        published[partition] = {
            "dagster/row_count": rows,
            "dagster/column_schema": table_schema(
                evaluation.table.schema, primary_key, column_descriptions
            ),
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
            description=_blocked_message(asset_name, blocked, fallbacks),
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


def _fallback(store: ObjectStore, asset_name: str, partition: str) -> str:
    """What readers get for a day whose new delivery was just refused, in words."""
    approval = read_approval(store, asset_name, partition, daily_partitions)
    if approval is None:
        return f"No approved version of {partition} exists; nothing was published."
    if not approval.passed:
        return (
            f"The newer delivery of {partition} was refused and the day is offline "
            "(on_refused_redelivery=take_offline); its last approved version is unchanged in "
            "storage but not served."
        )
    return (
        f"The newer delivery of {partition} was refused; the last approved version "
        f"({approval.object_key}, sha256 {str(approval.content_sha256)[:12]}) is unchanged "
        "and stays in use."
    )


def _blocked_message(
    asset_name: str, blocked: dict[str, list[GateResult]], fallbacks: dict[str, str]
) -> str:
    lines = [f"{asset_name}: {len(blocked)} partition(s) blocked by quality gates, not published:"]
    for partition, failures in sorted(blocked.items()):
        evaluated = [gate for gate in failures if gate.observed != NOT_EVALUATED]
        for gate in evaluated:
            lines.append(
                f"- {partition} {gate.gate}: observed {gate.observed}; threshold {gate.threshold}."
                f" {gate.message}"
            )
        if len(evaluated) < len(failures):
            lines.append(f"  ({len(failures) - len(evaluated)} later gates were not evaluated.)")
        lines.append(f"  {fallbacks[partition]}")
    return "\n".join(lines)


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
