"""The SLO exporter: the real `python -m scripts.slo_exporter` process, scraped over HTTP on
loopback, serves the newest day's `pipeline_slo` numbers in the Prometheus text format, each
metric named with its unit, parsed by prometheus_client's own parser."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.partitions import daily_partitions, day_bounds
from assets.slo.metrics import METRICS
from resources.factory import build_resources
from scripts.dagster_processes import embedded_home
from scripts.slo_exporter import DEFAULT_PORT, serve
from tests.support.environment import REPO_ROOT, free_port
from tests.support.processes import terminate_and_wait
from tests.support.slo import (
    features_job,
    home,
    materialize_slo,
    run_daily,
    samples,
    scrape,
    training_job,
)

NEWEST = daily_partitions.get_last_partition_key()
# Prometheus naming: the unit ends the name; `_info` marks a metric whose labels carry it.
UNITS = ("_seconds", "_ratio", "_usd", "_days", "_info")


@pytest.fixture
def slo_home(tmp_path):
    """A DAGSTER_HOME whose instance holds the newest day's daily runs and its pipeline_slo."""
    path = home(tmp_path)
    with dg.instance_for_test(temp_dir=path) as instance:
        resources = build_resources("local", local_root=tmp_path / "local")
        run_daily(instance, features_job, NEWEST, 2)
        run_daily(instance, training_job, NEWEST, 4)
        metadata, _ = materialize_slo(instance, resources, NEWEST)
    return Path(path), metadata


def test_the_exporter_process_serves_the_slo_asset_numbers(slo_home):
    path, metadata = slo_home
    port = free_port()
    with (path / "exporter.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scripts.slo_exporter",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "DAGSTER_HOME": str(path)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            text = scrape(port)
        finally:
            terminate_and_wait(process)
    values = samples(text)
    assert all(name.endswith(UNITS) for name, _ in values), sorted({n for n, _ in values})
    for metric in METRICS:
        expected = metadata[metric.key]
        key = (metric.name, tuple(sorted(metric.labels)))
        if expected != expected:  # NaN (e.g. no queue wait for an in-process run): absent
            assert key not in values, key
        else:
            assert values[key] == pytest.approx(expected), key
    assert values[("ml_pipeline_schedule_to_start_seconds", (("stage", "training"),))] > 4
    assert values[("ml_pipeline_run_success_ratio", (("stage", "training"),))] == 1.0
    assert (
        values[("ml_pipeline_slo_check_info", (("check", "success_ratio"), ("verdict", "passed")))]
        == 1
    )
    # A deployment without a production model warns (tests/assets/slo/test_pipeline_slo.py).
    verdict = (("check", "production_model_age"), ("verdict", "warn"))
    assert values[("ml_pipeline_slo_check_info", verdict)] == 1
    day_start = day_bounds(dt.date.fromisoformat(NEWEST))[0].timestamp()
    assert values[("ml_pipeline_slo_day_timestamp_seconds", ())] == day_start


def test_nothing_computed_yet_serves_no_slo_metrics(tmp_path):
    with dg.instance_for_test(temp_dir=home(tmp_path)) as instance:
        server, thread = serve(instance, "127.0.0.1", free_port())
        try:
            text = scrape(server.server_port)
        finally:
            server.shutdown()
            thread.join(timeout=10)
    assert not [n for n, _ in samples(text) if n.startswith("ml_pipeline_")]


def test_the_exporter_stops_on_sigterm_even_when_started_with_it_ignored(tmp_path):
    """A process can inherit SIGTERM ignored (Dagster maps it to SIGINT's disposition, ignored
    in a background job), and the ignore survives exec: the exporter handles SIGTERM itself."""
    home = embedded_home(tmp_path / "home")
    port = free_port()
    started_ignoring = (
        "import runpy, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"sys.argv = ['slo_exporter', '--port', '{port}', '--host', '127.0.0.1']; "
        "runpy.run_module('scripts.slo_exporter', run_name='__main__')"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", started_ignoring],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )
    try:
        scrape(port)
    finally:
        assert terminate_and_wait(process, timeout=10) == 0


def test_the_kubernetes_manifest_and_the_helm_values_use_the_exporters_port():
    manifest = list(
        yaml.safe_load_all((REPO_ROOT / "deployments/k8s/slo-exporter.yaml").read_text())
    )
    kinds = {doc["kind"]: doc for doc in manifest}
    assert set(kinds) == {"Deployment", "Service", "ServiceMonitor"}
    [container] = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][-4:] == ["--port", str(DEFAULT_PORT), "--host", "0.0.0.0"]
    assert container["ports"][0]["containerPort"] == DEFAULT_PORT
    [port] = kinds["Service"]["spec"]["ports"]
    assert (port["name"], port["port"]) == ("metrics", DEFAULT_PORT)
    [endpoint] = kinds["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    values = (REPO_ROOT / "deployments/k8s/values.yaml").read_text()
    assert f"port: {DEFAULT_PORT}" in values
