"""Write-audit-publish bookkeeping: gate reports next to the data, and verified reads.

For every partition an asset evaluates, `quality/<asset>/<partition>.json` records the verdict.
A passing partition's object is written first and its report last (the report is the commit
point); a failing partition gets only a report, so the previous good object stays in place.
Readers go through `read_published`, which refuses a partition whose latest verdict failed or
whose bytes do not match the hash the gates approved.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

import dagster as dg

from assets.publishing.keys import partition_object_key
from resources.storage.object_store import ObjectNotFound, ObjectStore


@dataclass(frozen=True)
class GateReport:
    asset: str
    partition: str
    passed: bool
    gates: list[dict]
    object_key: str
    content_sha256: str | None = None
    rows: int | None = None
    run_id: str = ""
    blocking: list[str] = field(default_factory=list)
    # Upstream asset -> content hash of the input partition this one was computed from.
    inputs: dict[str, str] = field(default_factory=dict)


class PartitionNotPublished(RuntimeError):
    """An input partition that has no approved, intact object to read."""


def report_key(asset: str, partition: str, partitions_def: dg.PartitionsDefinition) -> str:
    return partition_object_key(asset, partition, partitions_def, layer="quality", suffix="json")


def write_report(
    store: ObjectStore, report: GateReport, partitions_def: dg.PartitionsDefinition
) -> None:
    payload = json.dumps(report.__dict__, sort_keys=True, indent=1).encode()
    store.put_bytes(report_key(report.asset, report.partition, partitions_def), payload)


def read_report(
    store: ObjectStore, asset: str, partition: str, partitions_def: dg.PartitionsDefinition
) -> GateReport | None:
    try:
        payload = store.get_bytes(report_key(asset, partition, partitions_def))
    except ObjectNotFound:
        return None
    return GateReport(**json.loads(payload))


def trailing_passed_rows(
    store: ObjectStore,
    asset: str,
    partition: str,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    count: int,
) -> list[int]:
    """Row counts of the `count` previous partitions whose gates passed (the volume baseline)."""
    day = dt.date.fromisoformat(partition)
    first = dt.date.fromisoformat(partitions_def.get_first_partition_key())
    rows = []
    for offset in range(1, count + 1):
        earlier = day - dt.timedelta(days=offset)
        if earlier < first:
            break
        report = read_report(store, asset, earlier.isoformat(), partitions_def)
        if report and report.passed and report.rows is not None:
            rows.append(report.rows)
    return rows


def read_published(
    store: ObjectStore, asset: str, partition: str, partitions_def: dg.PartitionsDefinition
) -> tuple[bytes, GateReport]:
    """The partition's object, only if its latest gate verdict passed and the bytes match it."""
    report = read_report(store, asset, partition, partitions_def)
    if report is None:
        raise PartitionNotPublished(
            f"{asset} partition {partition} has never passed its quality gates "
            f"(no report at {report_key(asset, partition, partitions_def)}). "
            f"Materialize {asset} for {partition} first."
        )
    if not report.passed:
        raise PartitionNotPublished(
            f"{asset} partition {partition} is blocked by its quality gates "
            f"{report.blocking} (run {report.run_id}); nothing downstream may use it. Fix the "
            f"upstream data, then re-materialize {asset} for {partition}."
        )
    data = store.get_bytes(report.object_key)
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
