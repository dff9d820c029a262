"""The example's machinery, built explicitly from its own declarations, once.

The tests that exercise the machinery on the example's generated data (scripts/synthetic_events.py
makes the click stream only) build it from `CLICK_STREAM`, `CLICK_STREAM_FEATURES` and
`CTR_MODEL_INPUTS`, never from the project's `SOURCE` / `FEATURE_TABLES` / `MODEL_INPUTS`: once a
team points those at its own declarations, these tests still test the machinery on the example
instead of a mismatch between the example's data and the team's contract. The asset keys are
the project's (`daily_events`, each feature table's name, `training_dataset`). The declarations
themselves are imported from where they live (contract/, assets/features/logic.py).
"""

from __future__ import annotations

import dagster as dg
import pytest

from assets.features.assets import build_feature_assets
from assets.features.logic import CLICK_STREAM_FEATURES, FEATURE_TABLES
from assets.model.training_dataset import build_training_dataset, required_assets
from assets.quality.deadline import build_deadline_check, daily_assets
from assets.sources.daily_events import build_daily_events
from contract.model_inputs import CTR_MODEL_INPUTS, MODEL_INPUTS
from contract.source import CLICK_STREAM, SOURCE
from resources.warehouse.backends import POSTGRES_BATCH_BYTES, PostgresBackend, SqliteBackend
from sensors.completeness import upstream_completeness_sensor

example_daily_events = build_daily_events(CLICK_STREAM)
example_feature_assets = build_feature_assets(CLICK_STREAM_FEATURES)
example_training_dataset = build_training_dataset(CTR_MODEL_INPUTS, CLICK_STREAM_FEATURES)
example_deadline_check = build_deadline_check(CLICK_STREAM_FEATURES)
# The daily assets whose partitions the deadline check expects.
EXAMPLE_DAILY_ASSETS = daily_assets(CLICK_STREAM_FEATURES)
# The assets a training day needs approved for every day of its window, in verification order.
EXAMPLE_REQUIRED_ASSETS = required_assets(CLICK_STREAM_FEATURES)


def example_feature_asset(name: str) -> dg.AssetsDefinition:
    """The example's feature asset publishing table `name`."""
    (asset,) = [a for a in example_feature_assets if a.key == dg.AssetKey(name)]
    return asset


def example_completeness_sensor(
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """The completeness sensor reading the click stream's watermark row."""
    return upstream_completeness_sensor(default_status, CLICK_STREAM)


def example_sqlite(path: str) -> SqliteBackend:
    """A SQLite warehouse declared for the click stream (what `seed_warehouse` fills)."""
    return SqliteBackend(path, CLICK_STREAM)


def example_postgres(
    dsn: str, schema: str = "public", batch_bytes: int = POSTGRES_BATCH_BYTES
) -> PostgresBackend:
    """A PostgreSQL warehouse declared for the click stream."""
    return PostgresBackend(dsn, schema, CLICK_STREAM, batch_bytes)


def require_the_example_project() -> None:
    """Fail, saying why, a test that runs the project's own definitions (definitions.py, the
    daemon, `make run-day`) on the example's generated click stream, once the project declares
    its own source, feature tables or model inputs: those tests pin the example by design."""
    if (
        SOURCE is CLICK_STREAM
        and FEATURE_TABLES is CLICK_STREAM_FEATURES
        and MODEL_INPUTS is CTR_MODEL_INPUTS
    ):
        return
    pytest.fail(
        f"this test runs the project's definitions on the example's generated "
        f"{CLICK_STREAM.table!r} data, but the project declares SOURCE {SOURCE.table!r}, "
        f"FEATURE_TABLES {[t.name for t in FEATURE_TABLES]} and MODEL_INPUTS over "
        f"{MODEL_INPUTS.examples.table!r}: seed your own source's data for it, or delete it "
        "with the example",
        pytrace=False,
    )
