"""Deterministic object keys for asset partitions, built only from validated partition keys."""

from __future__ import annotations

import re

import dagster as dg

_ASSET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class InvalidPartitionKey(ValueError):
    """A partition key that is not a partition of the asset; no path is built from it."""


# Keys already found valid, per partitions definition. Asking Dagster costs about a millisecond
# and a publish asks a dozen times per partition; a time partition never stops being one (the
# window only grows), and any other definition is asked every time.
_VALID_TIME_PARTITIONS: set[tuple[dg.TimeWindowPartitionsDefinition, str]] = set()


def _is_partition(partition_key: object, partitions_def: dg.PartitionsDefinition) -> bool:
    if not isinstance(partition_key, str):
        return False
    is_time = isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
    if is_time and (partitions_def, partition_key) in _VALID_TIME_PARTITIONS:
        return True
    if not partitions_def.has_partition_key(partition_key):
        return False
    if is_time:
        # strptime accepts "2026-1-01"; only the canonical spelling may name an object.
        start = partitions_def.time_window_for_partition_key(partition_key).start
        if start.strftime(partitions_def.fmt) != partition_key:
            return False
        _VALID_TIME_PARTITIONS.add((partitions_def, partition_key))
    return True


def validated_partition_key(
    asset_name: str, partition_key: str, partitions_def: dg.PartitionsDefinition
) -> str:
    if not _is_partition(partition_key, partitions_def):
        raise InvalidPartitionKey(
            f"Partition key {partition_key!r} is not a partition of asset '{asset_name}' "
            f"(valid: YYYY-MM-DD days from {partitions_def.get_first_partition_key()} to "
            f"{partitions_def.get_last_partition_key()}). Nothing was read or written; "
            "launch the run again with a listed partition."
        )
    return partition_key


def partition_object_key(
    asset_name: str,
    partition_key: str,
    partitions_def: dg.PartitionsDefinition,
    layer: str = "features",
    suffix: str = "parquet",
) -> str:
    """`<layer>/<asset>/<partition>.<suffix>`; refuses keys outside the partitions definition."""
    if not _ASSET_NAME.match(asset_name) or not _ASSET_NAME.match(layer):
        raise ValueError(f"Asset name {asset_name!r} / layer {layer!r} must be lowercase names")
    key = validated_partition_key(asset_name, partition_key, partitions_def)
    return f"{layer}/{asset_name}/{key}.{suffix}"
