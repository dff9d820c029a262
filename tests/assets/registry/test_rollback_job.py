"""The rollback job through Dagster, as the launchpad runs it: the alias moves back by CAS,
the move is in history with its reason and run id, and production_model names the version."""

import dagster as dg
import pytest

from assets.registry.promotion import production_model, rollback_model_job
from resources.factory import build_resources
from resources.registry.registry import PRODUCTION
from tests.support.registry import record


@pytest.fixture
def resources(tmp_path):
    resources = build_resources("local", local_root=tmp_path)
    registry = resources["registry"].open_registry()
    for version in ("v1", "v2", "v3"):
        registry.register(record(version))
    registry.move_alias(PRODUCTION, "v1", expected=None, why="first", run_id="r1")
    registry.move_alias(PRODUCTION, "v2", expected="v1", why="second", run_id="r2")
    return resources


def _rollback(resources, **config):
    return rollback_model_job.execute_in_process(
        run_config={"ops": {"move_model_alias": {"config": config}}},
        resources={"registry": resources["registry"]},
        raise_on_error=False,
    )


def test_rollback_to_previous_is_recorded_and_shown(resources):
    result = _rollback(resources, to_version="previous", why="v2 drops conversions")
    assert result.success
    registry = resources["registry"].open_registry()
    assert registry.resolve(PRODUCTION).version == "v1"
    last = registry.history(PRODUCTION)[-1]
    assert (last.sequence, last.from_version, last.to_version) == (3, "v2", "v1")
    assert (last.why, last.run_id) == ("v2 drops conversions", result.run_id)
    shown = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("production_model")
    ]
    assert [m.metadata["version"].value for m in shown] == ["v1"]
    assert shown[0].metadata["move_sequence"].value == 3

    # The production_model asset itself reports the same.
    materialized = dg.materialize([production_model], resources=resources)
    [event] = materialized.get_asset_materialization_events()
    assert event.materialization.metadata["version"].value == "v1"


def test_rollback_to_a_named_version(resources):
    assert _rollback(resources, to_version="v3", why="pin v3").success
    assert resources["registry"].open_registry().resolve(PRODUCTION).version == "v3"


def test_rollback_refused_when_production_is_not_what_the_operator_saw(resources):
    result = _rollback(resources, to_version="v1", why="saw v3", expected_current="v3")
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "expected to name 'v3' but names 'v2'" in failure
    assert resources["registry"].open_registry().resolve(PRODUCTION).version == "v2"


def test_rollback_to_an_unknown_version_names_it(resources):
    result = _rollback(resources, to_version="v9", why="typo")
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "'v9'" in failure
    registry = resources["registry"].open_registry()
    assert registry.resolve(PRODUCTION).version == "v2"
    assert len(registry.history(PRODUCTION)) == 2


def test_rollback_through_the_production_factory_on_s3(s3_endpoint, s3_bucket, monkeypatch):
    """The prod registry resource resolves its storage's EnvVars at run time and reaches S3."""
    from resources.storage.object_store import open_s3_store

    monkeypatch.setenv("OBJECT_STORE_BUCKET", s3_bucket)
    monkeypatch.setenv("OBJECT_STORE_PREFIX", "ml/ctr")
    store = open_s3_store(
        s3_bucket, "ml/ctr", region="us-east-1", endpoint_url=s3_endpoint,
        access_key="testing", secret_key="testing",
    )  # fmt: skip
    from resources.registry.registry import ModelRegistry

    registry = ModelRegistry(store, "ctr")
    for version in ("v1", "v2"):
        registry.register(record(version))
    registry.move_alias(PRODUCTION, "v1", expected=None, why="first", run_id="r1")
    registry.move_alias(PRODUCTION, "v2", expected="v1", why="second", run_id="r2")

    result = _rollback(build_resources("prod"), to_version="previous", why="bad deploy")
    assert result.success
    assert registry.resolve(PRODUCTION).version == "v1"
    assert registry.history(PRODUCTION)[-1].why == "bad deploy"


def test_rolling_back_twice_goes_further_back_and_a_rolled_back_version_needs_naming(resources):
    registry = resources["registry"].open_registry()
    registry.move_alias(PRODUCTION, "v3", expected="v2", why="third", run_id="r3")

    assert _rollback(resources, to_version="previous", why="v3 drops conversions").success
    assert registry.resolve(PRODUCTION).version == "v2"
    assert _rollback(resources, to_version="previous", why="v2 as well").success
    assert registry.resolve(PRODUCTION).version == "v1"
    assert [(m.kind, m.to_version) for m in registry.history(PRODUCTION)[-2:]] == [
        ("rollback", "v2"),
        ("rollback", "v1"),
    ]

    refused = _rollback(resources, to_version="v3", why="try v3 again")
    assert not refused.success
    failure = refused.get_step_failure_events()[0].event_specific_data.error.message
    assert "'v3' was rolled back" in failure and "reinstate='v3'" in failure
    assert registry.resolve(PRODUCTION).version == "v1"
    assert _rollback(resources, to_version="v3", why="v3 fixed", reinstate="v3").success
    assert registry.resolve(PRODUCTION).version == "v3"
