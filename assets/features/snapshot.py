"""The approved events snapshot of a day, read once per run for all feature tables.

The feature assets of a run execute in one process (the in-process executor), one after the
other, each over the run's partitions. The first to need a day reads the approved snapshot
from storage (verifying its hash) into a local file that DuckDB scans; the others reuse it
while the approval still names the same content. A new run drops the previous run's days.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from assets.features.day_events import DayEvents
from assets.partitions import daily_partitions
from assets.publishing.gate_reports import GateReport, read_approval, read_published
from assets.sources.daily_events import ASSET as EVENTS_ASSET
from resources.storage.object_store import ObjectStore


@dataclass
class RunSnapshots:
    """The days one run has loaded, keyed by partition and approved content hash."""

    run_id: str | None = None
    days: dict[tuple[str, str], tuple[DayEvents, GateReport]] = field(default_factory=dict)
    loads: int = 0

    def approved(
        self, store: ObjectStore, partition: str, run_id: str
    ) -> tuple[DayEvents, GateReport]:
        """The day's approved events and their approval; read from storage on first use."""
        if run_id != self.run_id:
            self.clear()
            self.run_id = run_id
        approval = read_approval(store, EVENTS_ASSET, partition, daily_partitions)
        if approval is not None and approval.passed:
            cached = self.days.get((partition, approval.content_sha256))
            if cached is not None:
                return cached
        # read_published checks the approval again, and the bytes against its hash.
        data, report = read_published(store, EVENTS_ASSET, partition, daily_partitions)
        day = DayEvents.from_parquet_bytes(data)
        self.loads += 1
        for key in [key for key in self.days if key[0] == partition]:
            self.days.pop(key)[0].close()
        self.days[(partition, report.content_sha256)] = (day, report)
        return day, report

    def clear(self) -> None:
        for day, _ in self.days.values():
            day.close()
        self.days.clear()


RUN_SNAPSHOTS = RunSnapshots()
