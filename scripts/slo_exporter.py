"""Serve the pipeline's SLOs to Prometheus, next to the daemon:

    DAGSTER_HOME=/path/to/dagster_home python -m scripts.slo_exporter --port 9464

On every scrape it reads the Dagster instance of `$DAGSTER_HOME` (the same dagster.yaml as the
daemon and webserver) and serves the newest day's `pipeline_slo` materialization: each number
of `assets/slo/metrics.py` under its Prometheus name (the unit ends the name), the verdict of
each SLO check, and which day and when it was computed. The numbers are the asset's, so the
UI, the alerts and Prometheus never disagree. Reading fails loudly (HTTP 500): Prometheus then
records the scrape as failed (`up == 0`), which is itself worth an alert.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily

from assets.partitions import daily_partitions, day_bounds
from assets.slo.asset import ASSET
from assets.slo.metrics import METRICS, VERDICTS_KEY

DEFAULT_PORT = 9464
# How far back a scrape looks for the newest computed day (a pipeline down for longer shows
# as a stale `ml_pipeline_slo_day_timestamp_seconds`, then as no SLO metrics at all).
LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class Reported:
    day: str
    computed_at: float
    metadata: dict


def newest_slo(instance: dg.DagsterInstance, lookback_days: int = LOOKBACK_DAYS) -> Reported | None:
    """The newest day with a `pipeline_slo` materialization, and its latest one."""
    newest = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    for back in range(lookback_days):
        day = (newest - dt.timedelta(days=back)).isoformat()
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(ASSET), asset_partitions=[day]), limit=1
        ).records
        if records and records[0].asset_materialization is not None:
            metadata = records[0].asset_materialization.metadata
            return Reported(day, records[0].timestamp, {k: v.value for k, v in metadata.items()})
    return None


class SloCollector:
    """A prometheus_client collector that reads the instance at scrape time."""

    def __init__(self, instance: dg.DagsterInstance, lookback_days: int = LOOKBACK_DAYS):
        self.instance = instance
        self.lookback_days = lookback_days

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reported = newest_slo(self.instance, self.lookback_days)
        if reported is None:
            return
        families: dict[str, GaugeMetricFamily] = {}
        for metric in METRICS:
            value = reported.metadata.get(metric.key)
            if not isinstance(value, int | float) or math.isnan(value):
                continue  # not measured that day: absent, not a made-up zero
            family = families.setdefault(
                metric.name,
                GaugeMetricFamily(
                    metric.name, metric.help, labels=[name for name, _ in metric.labels]
                ),
            )
            family.add_metric([value for _, value in metric.labels], float(value))
        yield from families.values()
        verdicts = GaugeMetricFamily(
            "ml_pipeline_slo_check_info",
            "The SLO checks' verdicts on the reported day (1 for the verdict each one had).",
            labels=["check", "verdict"],
        )
        for check, verdict in sorted((reported.metadata.get(VERDICTS_KEY) or {}).items()):
            verdicts.add_metric([check, verdict], 1.0)
        yield verdicts
        yield GaugeMetricFamily(
            "ml_pipeline_slo_day_timestamp_seconds",
            "Start (UTC) of the day the SLO metrics describe.",
            value=day_bounds(dt.date.fromisoformat(reported.day))[0].timestamp(),
        )
        yield GaugeMetricFamily(
            "ml_pipeline_slo_computed_timestamp_seconds",
            "When that day's pipeline_slo was materialized.",
            value=reported.computed_at,
        )


def serve(instance: dg.DagsterInstance, host: str, port: int):
    """Start the HTTP endpoint in a background thread; returns (server, thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SloCollector(instance))
    return start_http_server(port, addr=host, registry=registry)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="0.0.0.0", help="Address to listen on.")
    args = parser.parse_args(argv)
    stop = threading.Event()
    # Kubernetes stops the pod with SIGTERM. Handled here, not left to the default action: a
    # process can start with SIGTERM ignored (Dagster maps SIGTERM to SIGINT's disposition in
    # the processes it runs in, and a background job's SIGINT is ignored), and an ignored
    # disposition survives exec, so the exporter would never stop.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with dg.DagsterInstance.get() as instance:
        server, _ = serve(instance, args.host, args.port)
        print(f"serving pipeline SLO metrics on http://{args.host}:{args.port}/metrics", flush=True)
        try:
            while not stop.wait(timeout=1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
