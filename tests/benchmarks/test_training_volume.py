"""The volume training benchmark: its generated window is what the pipeline writes (schema,
event-id order, history before the trained day only), and it runs both trainers end to end on a
tiny window and ends with its ratio line (no timing asserted)."""

import re
import subprocess
import sys

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from assets.features.logic import TRAINING_EXAMPLES_SCHEMA
from benchmarks.training_volume import LAST_DAY, WINDOW_DAYS, prepare
from contract.model_inputs import CTR_MODEL_INPUTS
from scripts.synthetic_examples import Population, examples_table
from tests.support.environment import REPO_ROOT


def test_generated_examples_follow_the_pipeline_schema_and_order():
    table = examples_table(Population(5000), LAST_DAY, 5000)
    assert table.schema == TRAINING_EXAMPLES_SCHEMA
    assert table.num_rows == 5000
    ids = table["event_id"].to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert 0 < pc.mean(table["label"]).as_py() < 0.5
    assert set(pc.unique(table["hour_of_day"]).to_pylist()) <= set(range(24))


def test_window_holds_seven_example_days_and_history_of_the_days_before(tmp_path):
    keys, versions = prepare(tmp_path, 300)
    kinds = {}
    for key, table in keys.items():
        spec = (
            CTR_MODEL_INPUTS.history_table(table)
            if table != CTR_MODEL_INPUTS.examples.table
            else None
        )
        columns = spec.columns if spec else CTR_MODEL_INPUTS.example_columns
        # Each partition holds every column the declaration reads from its table.
        assert set(columns) <= set(pq.read_schema(tmp_path / key).names), key
        kinds.setdefault(table, []).append(key)
    assert len(kinds["training_examples"]) == WINDOW_DAYS
    for asset in ("user_daily_features", "item_daily_features"):
        assert len(kinds[asset]) == WINDOW_DAYS - 1
        assert not [key for key in kinds[asset] if f"{LAST_DAY:%Y-%m-%d}" in key]
    assert set(versions) == set(keys)


@pytest.mark.slow
def test_training_volume_benchmark_prints_its_ratio_last():
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.training_volume", "--impressions", "3000",
            "--steps", "30", "--batch-size", "64", "--buffer-rows", "2000", "--repeats", "2",
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    for mode in ("in_memory", "streaming"):
        assert len([line for line in lines if f"mode={mode} " in line]) == 2
        [summary] = [line for line in lines if line.startswith(f"{mode}: ")]
        for figure in ("steady_samples_per_s=", "loop_samples_per_s=", "process_samples_per_s="):
            assert figure in summary, summary
