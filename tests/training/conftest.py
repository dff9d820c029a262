"""Fixtures for the trainer tests: real parquet inputs from the feature pipeline (synthetic
events -> training_examples -> parquet bytes) in a LocalObjectStore."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assets.features.logic import training_examples
from assets.publishing.parquet import to_parquet_bytes
from resources.storage.object_store import LocalObjectStore
from scripts.synthetic_events import generate_events
from tests.support.trainer_process import DAYS, INPUT_KEYS, Inputs, TrainerProcess, start_process


@pytest.fixture(scope="session")
def _input_template(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("training-inputs")
    store = LocalObjectStore(root)
    versions = {}
    for day, key in zip(DAYS, INPUT_KEYS, strict=True):
        parquet = to_parquet_bytes(training_examples(generate_events(day, 1500), day))
        store.put_bytes(key, parquet.data)
        versions[key] = parquet.sha256
    return Inputs(root=root, versions=versions)


@pytest.fixture
def inputs(_input_template: Inputs, tmp_path: Path) -> Inputs:
    """A fresh store per test (checkpoints never leak between tests), same input bytes."""
    root = tmp_path / "store"
    shutil.copytree(_input_template.root, root)
    return Inputs(root=root, versions=dict(_input_template.versions))


@pytest.fixture
def start_trainer(tmp_path: Path) -> Iterator[Callable[..., TrainerProcess]]:
    """Start `python -m training ARGS`; torchrun=N starts it under torch.distributed.run."""
    started: list[TrainerProcess] = []

    def start(args: list[str], *, torchrun: int = 0) -> TrainerProcess:
        launcher = [sys.executable]
        if torchrun:
            launcher += ["-m", "torch.distributed.run", "--standalone"]
            launcher += ["--nproc_per_node", str(torchrun)]
        command = [*launcher, "-m", "training", *args]
        process = start_process(command, tmp_path / f"stderr-{len(started)}.txt")
        started.append(process)
        return process

    yield start
    for process in started:  # only the processes this test started, by pid
        if process.proc.poll() is None:
            # torchrun starts its workers in their own sessions: SIGKILL on the agent would
            # orphan them, SIGTERM makes it stop them first.
            process.proc.send_signal(signal.SIGTERM)
            try:
                process.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.proc.kill()
                process.proc.wait()
