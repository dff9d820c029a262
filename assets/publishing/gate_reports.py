"""Write-audit-publish bookkeeping: versioned objects, audit reports and the approval pointer.

For every partition an asset evaluates:
- `quality/<asset>/<D>.json` records the latest audit (passed or failed): what happened last;
- a passing partition's table is written under a content-addressed key that no other version
  shares (`<layer>/<asset>/<D>/<sha256[:16]>.parquet`), so no write ever touches approved bytes;
- `approved/<asset>/<D>.json`, the approval pointer, names the approved version. It is written
  last, in one atomic compare-and-swap against the version the writer read (create-only for
  the first one): the only commit point, and no writer overwrites a pointer it has not seen.
  A failed audit never replaces it (unless the asset's `on_refused_redelivery` policy takes the
  day offline, which it then records).

Readers go through `read_published`, which resolves the pointer and refuses a day that has no
approved version, was taken offline, or whose bytes no longer match the approved hash.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

import dagster as dg

from assets.publishing.keys import partition_object_key, validated_partition_key
from resources.storage.object_store import ConditionalObjectStore, ObjectNotFound, ObjectStore


@dataclass(frozen=True)
class GateReport:
    asset: str
    partition: str
    passed: bool
    gates: list[dict]
    # The version this report approved (empty when the audit failed and wrote nothing).
    object_key: str
    content_sha256: str | None = None
    rows: int | None = None
    run_id: str = ""
    blocking: list[str] = field(default_factory=list)
    # Upstream asset -> content hash of the input partition this one was computed from.
    inputs: dict[str, str] = field(default_factory=dict)
    # What the history gates remember of a passed partition (assets/quality/history.py).
    profile: dict = field(default_factory=dict)
    # On the approval pointer: earlier approved versions still kept, newest first.
    superseded: list[str] = field(default_factory=list)


class PartitionNotPublished(RuntimeError):
    """An input partition that has no approved, intact object to read."""


def report_key(asset: str, partition: str, partitions_def: dg.PartitionsDefinition) -> str:
    return partition_object_key(asset, partition, partitions_def, layer="quality", suffix="json")


def approval_key(asset: str, partition: str, partitions_def: dg.PartitionsDefinition) -> str:
    return partition_object_key(asset, partition, partitions_def, layer="approved", suffix="json")


def version_key(
    asset: str,
    partition: str,
    partitions_def: dg.PartitionsDefinition,
    layer: str,
    content_sha256: str,
) -> str:
    """`<layer>/<asset>/<D>/<sha16>.parquet`: one key per content, never shared by two."""
    day_prefix = partition_object_key(asset, partition, partitions_def, layer=layer, suffix="x")
    return f"{day_prefix.removesuffix('.x')}/{content_sha256[:16]}.parquet"


def _encode(report: GateReport) -> bytes:
    return json.dumps(report.__dict__, sort_keys=True, indent=1).encode()


def _write(store: ObjectStore, key: str, report: GateReport) -> None:
    store.put_bytes(key, _encode(report))


def _read(store: ObjectStore, key: str) -> GateReport | None:
    try:
        payload = store.get_bytes(key)
    except ObjectNotFound:
        return None
    return GateReport(**json.loads(payload))


def write_report(
    store: ObjectStore, report: GateReport, partitions_def: dg.PartitionsDefinition
) -> None:
    _write(store, report_key(report.asset, report.partition, partitions_def), report)


def read_report(
    store: ObjectStore, asset: str, partition: str, partitions_def: dg.PartitionsDefinition
) -> GateReport | None:
    """The latest audit of the partition, passed or failed."""
    return _read(store, report_key(asset, partition, partitions_def))


def write_approval(
    store: ConditionalObjectStore,
    report: GateReport,
    partitions_def: dg.PartitionsDefinition,
    expected_version: str | None,
) -> None:
    """Move the approval pointer (the commit point): one atomic compare-and-swap from
    `expected_version`, the version `read_approval_versioned` returned (None: there was no
    pointer, so it is created only if still absent). Raises PreconditionFailed, writing
    nothing, when the pointer is no longer that version: re-read it and decide again."""
    key = approval_key(report.asset, report.partition, partitions_def)
    if expected_version is None:
        store.put_if_absent(key, _encode(report))
    else:
        store.put_if_version(key, _encode(report), expected_version)


def approval_is(
    store: ConditionalObjectStore,
    report: GateReport,
    partitions_def: dg.PartitionsDefinition,
) -> bool:
    """Whether the pointer still holds exactly `report` (nobody moved it since)."""
    try:
        current = store.get_bytes(approval_key(report.asset, report.partition, partitions_def))
    except ObjectNotFound:
        return False
    return current == _encode(report)


def read_approval_versioned(
    store: ConditionalObjectStore,
    asset: str,
    partition: str,
    partitions_def: dg.PartitionsDefinition,
) -> tuple[GateReport | None, str | None]:
    """The approval pointer and the version a compare-and-swap of it must name (None, None
    when there is no pointer)."""
    try:
        current = store.read_with_version(approval_key(asset, partition, partitions_def))
    except ObjectNotFound:
        return None, None
    return GateReport(**json.loads(current.data)), current.version


def read_approval(
    store: ObjectStore, asset: str, partition: str, partitions_def: dg.PartitionsDefinition
) -> GateReport | None:
    """What the approval pointer names: the approved version, or a withdrawal (passed=False)."""
    return _read(store, approval_key(asset, partition, partitions_def))


def trailing_passed_reports(
    store: ObjectStore,
    asset: str,
    partition: str,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    count: int,
) -> list[GateReport]:
    """The approved versions of the `count` previous days (the history gates' baseline)."""
    day = dt.date.fromisoformat(partition)
    first = dt.date.fromisoformat(partitions_def.get_first_partition_key())
    reports = []
    for offset in range(1, count + 1):
        earlier = day - dt.timedelta(days=offset)
        if earlier < first:
            break
        report = read_approval(store, asset, earlier.isoformat(), partitions_def)
        if report and report.passed and report.rows is not None:
            reports.append(report)
    return reports


def read_published(
    store: ObjectStore, asset: str, partition: str, partitions_def: dg.PartitionsDefinition
) -> tuple[bytes, GateReport]:
    """The approved version's bytes, only if the pointer approves one and the bytes match it."""
    validated_partition_key(asset, partition, partitions_def)
    report = read_approval(store, asset, partition, partitions_def)
    if report is None:
        latest = read_report(store, asset, partition, partitions_def)
        if latest is not None and not latest.passed:
            raise PartitionNotPublished(
                f"{asset} partition {partition} is blocked by its quality gates "
                f"{latest.blocking} (run {latest.run_id}) and has no approved version; nothing "
                f"downstream may use it. Fix the upstream data, then re-materialize {asset} "
                f"for {partition}."
            )
        raise PartitionNotPublished(
            f"{asset} partition {partition} has never passed its quality gates "
            f"(no approval at {approval_key(asset, partition, partitions_def)}). "
            f"Materialize {asset} for {partition} first."
        )
    if not report.passed:
        raise PartitionNotPublished(
            f"{asset} partition {partition} is blocked by its quality gates "
            f"{report.blocking} (run {report.run_id}) and was taken offline "
            "(on_refused_redelivery=take_offline); nothing downstream may use it. Fix the "
            f"upstream data, then re-materialize {asset} for {partition}."
        )
    try:
        data = store.get_bytes(report.object_key)
    except ObjectNotFound as err:
        raise PartitionNotPublished(
            f"{asset} partition {partition}: the approved version {report.object_key} is "
            f"missing from storage. Re-materialize {asset} for {partition}."
        ) from err
    actual = hashlib.sha256(data).hexdigest()
    if actual != report.content_sha256:
        raise PartitionNotPublished(
            f"{asset} partition {partition}: object {report.object_key} has sha256 {actual[:12]}"
            f" but its gates approved {str(report.content_sha256)[:12]}; it changed after "
            f"publication. Re-materialize {asset} for {partition}."
        )
    return data, report


def read_published_with_lineage(
    store: ObjectStore, asset: str, partition: str, partitions_def: dg.PartitionsDefinition
) -> tuple[bytes, GateReport]:
    """Like `read_published`, and the inputs it was computed from must still be the approved
    ones: a day whose source was re-loaded and blocked (or changed) is refused too."""
    data, report = read_published(store, asset, partition, partitions_def)
    for upstream, approved_hash in report.inputs.items():
        _, upstream_report = read_published(store, upstream, partition, partitions_def)
        if upstream_report.content_sha256 != approved_hash:
            raise PartitionNotPublished(
                f"{asset} partition {partition} was computed from {upstream} "
                f"{str(approved_hash)[:12]}, but the approved {upstream} is now "
                f"{str(upstream_report.content_sha256)[:12]}. Re-materialize {asset} for "
                f"{partition}."
            )
    return data, report
