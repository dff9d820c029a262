"""Our image's packages open the instance storage that the chart renders from our values.

SQLAlchemy 2.1 (the lock's) reads a bare postgresql:// as the psycopg 3 driver, which the lock
does not hold (dagster-postgres brings psycopg2): without `postgresqlScheme` every run worker
would fail to open the instance. Checked against the real Postgres at 127.0.0.1:5432, in a
throwaway database, with the rendered block pointed at it.
"""

import dagster as dg
import pytest
import yaml

from tests.support.helm_storage import render_helm_storage
from tests.support.queue_policy import HELM

pytestmark = pytest.mark.postgres


def _instance_config(values: dict, database: str) -> dict:
    """What the chart renders, aimed at the local server: only the target changes."""
    config = render_helm_storage(values, hostname="127.0.0.1")
    for storage in config.values():
        storage["config"]["postgres_db"].update(username="postgres", db_name=database, port=5432)
    return {**config, "telemetry": {"enabled": False}}


def _open(tmp_path, config: dict) -> dg.DagsterInstance:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    return dg.DagsterInstance.from_config(str(tmp_path))


def test_the_rendered_storage_opens_and_records_events(postgres_database, tmp_path, monkeypatch):
    # Trust auth ignores it; the chart's Secret sets it in the cluster.
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused-with-trust-auth")
    values = yaml.safe_load(HELM.read_text())
    with _open(tmp_path, _instance_config(values, postgres_database)) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="storage_probe"))
        latest = instance.get_latest_materialization_event(dg.AssetKey("storage_probe"))
        assert latest is not None
        assert instance.get_runs(limit=1) == []


def test_without_the_scheme_the_instance_does_not_open(postgres_database, tmp_path, monkeypatch):
    """Why values.yaml names the driver: the chart's default (no scheme) fails in our image."""
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused-with-trust-auth")
    values = yaml.safe_load(HELM.read_text())
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    del values["postgresql"]["postgresqlScheme"]
    # Opening the instance builds its storage's engines: that is where it fails.
    with pytest.raises(ModuleNotFoundError, match="No module named 'psycopg'"):
        _open(tmp_path, _instance_config(values, postgres_database))
