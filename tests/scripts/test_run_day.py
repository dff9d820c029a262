"""`make run-day`: one day of the loop from the command line, on an embedded instance and a
seeded warehouse. A first model is promoted against the baseline; an untrained candidate the
next day is refused, the line naming the check and why, and the exit status says so."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.model.records import read_evaluation
from resources.registry.registry import DEFAULT_MODEL, PRODUCTION, ModelRegistry
from resources.storage.object_store import LocalObjectStore
from scripts.dagster_processes import embedded_home
from scripts.run_day import main
from tests.support.environment import REPO_ROOT

FIRST, SECOND = "2026-11-04", "2026-11-05"
LINE = re.compile(r"^(\w+) +(\S*) +(materialized|refused|failed|not run) *(.*)$")
# The length from the data (no total_steps): six passes over the window's training rows.
SHORT = {"ops": {"model_checkpoint": {"config": {"epochs": 6, "checkpoint_every_steps": 50}}}}
# Learning rate 0: the candidate keeps its random initial weights.
UNTRAINED = {
    "ops": {
        "model_checkpoint": {
            "config": {"lr": 0.0, "init_from": "none", "total_steps": 10, "warmup_steps": 0}
        }
    }
}


def _run_day(env: dict, tmp_path: Path, day: str, config: dict, *extra: str):
    path = tmp_path / f"{day}.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "scripts.run_day", "--day", day, "--config", str(path), *extra],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [LINE.match(line) for line in done.stdout.splitlines()[1:]]
    assert all(lines), done.stdout + done.stderr[-3000:]
    return done, {m[1]: (m[2], m[3], m[4]) for m in lines}


@pytest.mark.slow  # the features of a week and two trainer subprocesses
@pytest.mark.usefixtures("example_project")  # `make run-day` on the seeded example
def test_run_day_promotes_a_first_model_then_refuses_an_untrained_one(tmp_path, seeded_sqlite):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(seeded_sqlite, data / "warehouse.sqlite")
    home = embedded_home(tmp_path / "home")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LOCAL_DATA_DIR": str(data),
        "DAGSTER_DEPLOYMENT": "local",
    }

    done, assets = _run_day(env, tmp_path, FIRST, SHORT)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    # Every asset of the day, in order: the window's features, then the training job's.
    assert list(assets) == [
        "daily_events",
        "item_daily_features",
        "training_examples",
        "user_daily_features",
        "training_dataset",
        "model_next_day_guard",
        "model_checkpoint",
        "model_evaluation",
        "model_promotion",
    ]
    assert assets["daily_events"][:2] == ("2026-10-29..2026-11-04", "materialized")
    assert all(outcome == "materialized" for _, outcome, _ in assets.values())
    assert "decided_by=baseline" in assets["model_evaluation"][2]
    assert "promoted=True" in assets["model_promotion"][2]
    store = LocalObjectStore(data / "object-store")
    verdict = read_evaluation(store, FIRST)
    assert verdict["passed"] and verdict["decided_by"] == "baseline"
    promoted = ModelRegistry(store, DEFAULT_MODEL).resolve(PRODUCTION)
    assert promoted.day == FIRST
    # The runs are the instance's, for the UI.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        jobs = [run.job_name for run in instance.get_runs()]
    assert sorted(jobs) == ["daily_features_job", "daily_training_job"]

    done, assets = _run_day(env, tmp_path, SECOND, UNTRAINED, "--window", "1")
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    assert assets["daily_events"][:2] == (SECOND, "materialized")
    assert assets["model_checkpoint"][1] == "materialized"
    day, outcome, why = assets["model_evaluation"]
    assert (day, outcome) == (SECOND, "refused")
    verdict = read_evaluation(store, SECOND)
    assert not verdict["passed"] and verdict["decided_by"] == "production"
    # The line names each refusing check with the evaluation's own words.
    for name, check in verdict["checks"].items():
        assert (f"check {name}" in why) == (not check["passed"])
    assert "check no_regression" in why
    assert f"model_evaluation {SECOND} refused by the production rule: auc: candidate" in why
    assert assets["model_promotion"][1:] == ("not run", "model_evaluation stopped this run")
    assert ModelRegistry(store, DEFAULT_MODEL).resolve(PRODUCTION).version == promoted.version


def test_run_day_refuses_a_day_that_is_not_a_training_day(capsys):
    assert main(["--day", "2025-01-02"]) == 2
    assert "DAY=2025-01-02 is not a training day: the loop trains days 2025-01-07 .." in (
        capsys.readouterr().err
    )
    assert main(["--day", "11/04/2026"]) == 2
    assert main(["--day", "2026-11-04", "--window", "0"]) == 2


def test_make_run_day_passes_day_window_and_config():
    done = subprocess.run(
        ["make", "-n", "run-day", "DAY=2026-11-04", "WINDOW=3", "CONFIG=day.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    command = " ".join(done.stdout.replace("\\\n", " ").split())
    assert "-m scripts.prepare_local" in command
    assert '-m scripts.run_day --day "2026-11-04" --window 3 --config "day.yaml"' in command
