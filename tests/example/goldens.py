"""The example feature tables' golden digests: one for each table's published bytes and one
per column, so that a changed table names the columns that changed.

`make goldens` (python -m tests.example.goldens) rewrites goldens.json from the current
feature logic: run it only after an intended change of output, together with a bump of
FEATURE_CODE_VERSION, so that Dagster marks the partitions the old code computed as stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from assets.features.logic import CLICK_STREAM_FEATURES, as_table
from assets.publishing.parquet import to_parquet_bytes
from tests.example.golden_inputs import DAY, golden_inputs

GOLDENS = Path(__file__).with_name("goldens.json")


def digests(table: pa.Table) -> dict:
    """The published object's sha256, and each column's on its own (same writer settings)."""
    return {
        "table": to_parquet_bytes(table).sha256,
        "columns": {
            name: to_parquet_bytes(table.select([name])).sha256 for name in table.schema.names
        },
    }


def compute() -> dict[str, dict]:
    """Every example feature table computed from every golden input, keyed 'input/table'."""
    inputs = golden_inputs()
    return {
        f"{case}/{table.name}": digests(as_table(table.compute(events, DAY)))
        for case, events in inputs.items()
        for table in CLICK_STREAM_FEATURES
    }


def load() -> dict[str, dict]:
    return json.loads(GOLDENS.read_text())


def main() -> None:
    previous = load() if GOLDENS.exists() else {}
    current = compute()
    GOLDENS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    changed = sorted(case for case in current if previous.get(case) != current[case])
    print(f"wrote {GOLDENS} ({len(current)} tables; changed: {', '.join(changed) or 'none'})")
    if changed:
        print("Bump FEATURE_CODE_VERSION in assets/features/assets.py with this change.")


if __name__ == "__main__":
    main()
