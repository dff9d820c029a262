"""Write-audit-publish for daily assets: evaluate gates per partition, publish only what passes.

Per partition of the run (one day, or a batch of days in a backfill run):
- every gate's verdict is recorded as an asset check evaluation: against the partition in a run
  of several, as the gate's summary in a run of one (the daily run), and against the partition
  whenever the step fails, as no summary follows;
- passing: the table is written as a new content-addressed version, then the audit report,
  then the approval pointer (the commit point: a compare-and-swap against the pointer this
  publish read), then retention collects the day's other versions: superseded ones beyond
  `keep_versions`, and versions no pointer ever named (a publish killed before its pointer
  moved). Never the one the pointer names;
- failing a blocking (ERROR) gate: only the audit report is written. The approved version
  stays in service (or, with `on_refused_redelivery: take_offline`, the pointer records the
  day as offline), the notifier is told, and the run fails without retries once every
  partition is evaluated, so nothing downstream runs in it. Partitions of the batch that
  passed keep their published versions and are recorded as materialized.

A kill at any point leaves the previous approved version readable: no write touches its
bytes, and the pointer moves in one atomic write. Overlapping publishes of the same day never
overwrite a pointer they have not read: the one that loses the swap re-reads the pointer,
decides again on top of it and deletes nothing (a swap that S3 answers 409, not applied, while
the pointer stays where it was is no lost race: it is sent again after a pause). The winner
deletes only after re-reading that the pointer is still the one it wrote; should a later
publish's pointer be swapped in within that instant and name a version it collects, that
publish finds its version missing when it checks at its end and writes it again (same key,
same bytes).
"""

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import dagster as dg
import pyarrow as pa

from assets.partitions import daily_partitions
from assets.publishing.gate_reports import (
    GateReport,
    approval_is,
    read_approval,
    read_approval_versioned,
    version_key,
    write_approval,
    write_report,
)
from assets.publishing.parquet import ParquetFile, write_parquet_file
from assets.quality.gates import NOT_EVALUATED, GateResult
from resources.notifier import Alert, Notifier
from resources.storage.object_store import (
    ConditionalObjectStore,
    ObjectStore,
    PreconditionFailed,
    StoredObject,
)

# How often a publish re-reads the pointer and decides again after losing its swap to an
# overlapping publish of the same day, before it gives up (and fails the step).
POINTER_ATTEMPTS = 10
# The first pause before sending a swap again that S3 answered 409 (not applied); it doubles.
CONFLICT_DELAY_S = 0.05


@dataclass(frozen=True)
class PublishPolicy:
    """What a refused re-delivery does to an approved day, and how many versions are kept."""

    on_refused_redelivery: Literal["keep_approved", "take_offline"] = "keep_approved"
    keep_versions: int = 2


@dataclass
class Evaluation:
    """What an asset computed for one partition: the table (None if it could not be built;
    a ParquetFile when it was encoded as it streamed, which the publisher removes when done),
    the gate verdicts, the content hashes of the inputs it was computed from, extra metadata
    worth recording, and the profile the history gates compare later days with."""

    table: pa.Table | ParquetFile | None
    gates: list[GateResult]
    metadata: dict = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    profile: dict = field(default_factory=dict)


def gate_check_specs(asset_name: str, gate_names: Sequence[str]) -> list[dg.AssetCheckSpec]:
    """One blocking check per gate; the asset records each day's verdicts (module docstring)."""
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


def _verdict(partition: str, gate: GateResult) -> dict:
    """A gate's verdict on one day as a check result says it, recorded against the day or as a
    one-day run's summary alike."""
    return {
        "passed": gate.passed,
        "severity": dg.AssetCheckSeverity(str(gate.severity)),
        "description": f"{partition}: {gate.message}",
        "metadata": gate_metadata(partition, gate),
    }


def _record_verdicts(
    context: dg.AssetExecutionContext, asset_name: str, partition: str, gates: list[GateResult]
) -> None:
    """Each gate's verdict on one day, in the check's execution history under that day."""
    for gate in gates:
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(asset_name),
                check_name=gate.gate,
                partition=partition,
                blocking=True,
                **_verdict(partition, gate),
            )
        )


@contextmanager
def _verdicts_kept_if_the_step_fails(
    context: dg.AssetExecutionContext, asset_name: str, unrecorded: dict[str, list[GateResult]]
) -> Iterator[None]:
    """No summary follows a step that fails (refused, not stored, interrupted): the verdicts
    of the days it judged (`unrecorded`, filled as it goes) are recorded against their days."""
    try:
        yield
    except BaseException:
        for partition, gates in unrecorded.items():
            _record_verdicts(context, asset_name, partition, gates)
        raise


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
    store: ConditionalObjectStore,
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
    # Read before anything is written: every swap below names this version (or a re-read one).
    approved, version = read_approval_versioned(store, asset_name, partition, daily_partitions)
    if not report.passed or evaluation.table is None:
        write_report(store, report, daily_partitions)
        if policy.on_refused_redelivery == "take_offline":
            _withdraw(store, report, approved, version)
        return None
    # The encoded version lives in a local temp file, streamed to the store (by multipart
    # upload when large) and kept for rewrites until this publish is done: a day of any size
    # is never one buffer in memory. The directory goes on return and on error alike.
    with tempfile.TemporaryDirectory(prefix="publish-") as scratch:
        return _publish_version(
            store, asset_name, layer, evaluation, report, approved, version, policy, Path(scratch)
        )


def _publish_version(
    store: ConditionalObjectStore,
    asset_name: str,
    layer: str,
    evaluation: Evaluation,
    report: GateReport,
    approved: GateReport | None,
    version: str | None,
    policy: PublishPolicy,
    scratch: Path,
) -> StoredObject:
    """Write the passing table as a new version, its report and the pointer, then run
    retention; `scratch` holds the encoded version."""
    partition = report.partition
    parquet = evaluation.table
    if not isinstance(parquet, ParquetFile):
        parquet = write_parquet_file(parquet, scratch / "version.parquet")
    key = version_key(asset_name, partition, daily_partitions, layer, parquet.sha256)
    # Listed before this version is written: a version written after this point belongs to a
    # publish that read the pointer after it, so its swap conflicts with this one's (or comes
    # after it) and it is never collected here while it still waits for its pointer.
    listed = _day_versions(store, key)
    stored = store.put_file(key, parquet.path)
    report = replace(
        report,
        object_key=key,
        content_sha256=stored.sha256,
        rows=evaluation.table.num_rows,
        profile=evaluation.profile,
    )
    write_report(store, report, daily_partitions)
    pointer, replaced, conflicted = _move_pointer(
        store, report, approved, version, policy, parquet.path
    )
    # Retention, only when this publish's swap won at once and nobody moved the pointer since:
    # after a conflict the next uncontended publish of the day collects what is left.
    if not conflicted and approval_is(store, pointer, daily_partitions):
        keep = {pointer.object_key, *pointer.superseded}
        for old in dict.fromkeys([*_versions(replaced), *listed]):
            if old not in keep:
                store.delete(old)
    _rewrite_if_named_and_missing(store, report, parquet.path)
    return stored


def _move_pointer(
    store: ConditionalObjectStore,
    report: GateReport,
    approved: GateReport | None,
    version: str | None,
    policy: PublishPolicy,
    encoded: Path,
) -> tuple[GateReport, GateReport | None, bool]:
    """Swap the pointer from `version` to `report` (keeping retention's earlier versions). On
    a conflict re-read it and decide again. Returns the pointer now in place, the one it
    replaced, and whether any swap conflicted."""
    conflicted = False
    for attempt in range(POINTER_ATTEMPTS):
        if conflicted and approved and approved.passed and approved.object_key == report.object_key:
            # An overlapping publish approved the same content: nothing is left to move.
            return approved, approved, True
        pointer = replace(report, superseded=_kept(approved, policy, current=report.object_key))
        try:
            write_approval(store, pointer, daily_partitions, version)
            return pointer, approved, conflicted
        except PreconditionFailed:
            approved, current = read_approval_versioned(
                store, report.asset, report.partition, daily_partitions
            )
            if current == version:
                _pause_after_not_applied(attempt)
                continue  # the same swap again: no lost race, nobody else moved the pointer
            conflicted, version = True, current
            # The winner's retention may have collected this version meanwhile: write it again
            # (same key, same bytes) before a pointer names it.
            store.put_file(report.object_key, encoded)
    raise RuntimeError(
        f"{report.asset} partition {report.partition}: the approval pointer's swap was refused "
        f"{POINTER_ATTEMPTS} times while publishing {report.object_key} (it kept moving, or "
        "S3 kept answering 409: overlapping runs of the same day are still writing). Re-run "
        "the partition once they are done."
    )


def _pause_after_not_applied(attempt: int) -> None:
    """A refused swap that left the pointer where it was is S3's 409 ConditionalRequestConflict:
    another conditional write to the key was in flight and this one was not applied. It asks
    for the same request again after a pause (growing, so a burst of writers thins out)."""
    time.sleep(CONFLICT_DELAY_S * 2 ** min(attempt, 5))


def _withdraw(
    store: ConditionalObjectStore,
    report: GateReport,
    approved: GateReport | None,
    version: str | None,
) -> None:
    """take_offline: the pointer records the refusal and still lists every version, so
    retention deletes them only after a later delivery is approved."""
    for attempt in range(POINTER_ATTEMPTS):
        if approved is None or not approved.passed:
            return  # nothing approved to take offline
        try:
            withdrawn = replace(report, superseded=_versions(approved))
            write_approval(store, withdrawn, daily_partitions, version)
            return
        except PreconditionFailed:
            approved, current = read_approval_versioned(
                store, report.asset, report.partition, daily_partitions
            )
            if current == version:
                _pause_after_not_applied(attempt)
            version = current
    raise RuntimeError(
        f"{report.asset} partition {report.partition}: the approval pointer kept moving under "
        f"{POINTER_ATTEMPTS} attempts to take the day offline. Re-run the partition."
    )


def _rewrite_if_named_and_missing(store: ObjectStore, report: GateReport, encoded: Path) -> None:
    """An overlapping publish that decided before this one's pointer moved may have collected
    this version just after the swap; while the pointer names it, it must exist."""
    current = read_approval(store, report.asset, report.partition, daily_partitions)
    if current and current.object_key == report.object_key and not store.exists(report.object_key):
        store.put_file(report.object_key, encoded)


def _day_versions(store: ObjectStore, key: str) -> list[str]:
    """Every version stored for the day of `key`, referenced by a pointer or not."""
    prefix = key.rsplit("/", 1)[0]
    return [
        found
        for found in store.list_keys(prefix)
        if found.startswith(f"{prefix}/") and found.endswith(".parquet")
    ]


def _versions(approval: GateReport | None) -> list[str]:
    """Every version the pointer knows of, newest first."""
    if approval is None:
        return []
    current = [approval.object_key] if approval.object_key else []
    return [*current, *approval.superseded]


def _kept(approval: GateReport | None, policy: PublishPolicy, current: str = "") -> list[str]:
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
) -> list[dg.MaterializeResult | dg.AssetCheckResult]:
    """Evaluate, record and publish each of the step's partitions; what the step yields: its
    materialization, then one run-level summary per gate."""
    published: dict[str, dict] = {}
    verdicts: dict[str, list[GateResult]] = {}
    blocked: dict[str, list[GateResult]] = {}
    fallbacks: dict[str, str] = {}
    # A run of several days records each day's verdicts as they come. A run of one day (the
    # daily run) records them once, as the gates' summaries, the same words and numbers: one
    # check event fewer per gate a day, and Dagster's Postgres event log opens new connections
    # for every event. Should the step fail before the summaries, they are recorded against the
    # day (a crash or an event-log error after the return leaves them in the day's gate report).
    one_day = len(context.partition_keys) == 1
    # A run of several days has recorded each day's verdicts by the time anything can fail.
    unrecorded = verdicts if one_day else {}
    with _verdicts_kept_if_the_step_fails(context, asset_name, unrecorded):
        for partition in context.partition_keys:
            evaluation = evaluate(partition)
            _check_the_gates_are_the_declared(asset_name, partition, evaluation.gates, gate_names)
            verdicts[partition] = evaluation.gates
            if not one_day:
                _record_verdicts(context, asset_name, partition, evaluation.gates)
            try:
                stored = publish_if_passed(
                    store, asset_name, layer, partition, evaluation, context.run.run_id, policy
                )
            finally:
                # A streamed partition's file: stored or refused, it is not needed any more.
                if isinstance(evaluation.table, ParquetFile):
                    evaluation.table.path.unlink(missing_ok=True)
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

        if blocked:
            # The step fails, so Dagster records no materialization from the return value:
            # record the partitions of this batch that did pass explicitly.
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
        # One line per run, not per partition: each partition's materialization already carries
        # its rows and object, and every log line is one more event-log write
        # (docs/benchmarks.md).
        if published:
            rows = sum(metadata["dagster/row_count"] for metadata in published.values())
            context.log.info(
                f"{asset_name}: published {len(published)} partition(s), {rows} rows, "
                f"{min(published)} to {max(published)}"
            )
        # Dagster keeps one data version per run output, so only a single-partition run can
        # carry the content hash as its data version; batched runs record content_sha256 per
        # partition.
        only = next(iter(published.values())) if len(published) == 1 else None
        # The summaries follow the materialization rather than ride inside it: a result carried
        # by a MaterializeResult costs Dagster an event-log query to find which check it is, and
        # a result that names its asset and check does not (a query fewer per gate a day).
        return [
            dg.MaterializeResult(
                data_version=dg.DataVersion(only["content_sha256"]) if only else None
            ),
            *(run_level_result(asset_name, gate, verdicts) for gate in gate_names),
        ]


def _check_the_gates_are_the_declared(
    asset_name: str, partition: str, gates: list[GateResult], gate_names: Sequence[str]
) -> None:
    """Each declared check gets one verdict a day, before anything is published."""
    judged = sorted(gate.gate for gate in gates)
    if judged != sorted(gate_names):
        raise ValueError(
            f"{asset_name} {partition}: the gates evaluated ({', '.join(judged)}) are not the "
            f"checks declared ({', '.join(sorted(gate_names))}); nothing was published. The "
            "asset's evaluate must return exactly one verdict per gate its check specs name."
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


def run_level_result(
    asset_name: str, gate: str, verdicts: dict[str, list[GateResult]]
) -> dg.AssetCheckResult:
    """One gate's summary over the run's partitions, as it happened: passed everywhere, or
    failed with WARN severity on the partitions where a gate failed without blocking (a
    warn-only gate, or a moderate drift). A run of one day's summary is that day's verdict, as
    a run of several records it per day. (A gate that blocked a partition fails the step before
    any summary is written.)"""
    if len(verdicts) == 1:
        [(partition, results)] = verdicts.items()
        [result] = [result for result in results if result.gate == gate]
        return dg.AssetCheckResult(
            asset_key=asset_name, check_name=gate, **_verdict(partition, result)
        )
    failed = {
        partition: result
        for partition, results in verdicts.items()
        for result in results
        if result.gate == gate and not result.passed
    }
    if not failed:
        return dg.AssetCheckResult(
            asset_key=asset_name,
            check_name=gate,
            passed=True,
            description=f"passed for all {len(verdicts)} partition(s) of this run",
            metadata={"partitions": ", ".join(verdicts), "failed_partitions": 0},
        )
    return dg.AssetCheckResult(
        asset_key=asset_name,
        check_name=gate,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"failed without blocking (WARN) on {len(failed)} of {len(verdicts)} partition(s): "
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
