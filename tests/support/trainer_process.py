"""Helpers for the trainer tests: run `python -m training` (or torchrun) as a real
subprocess and read its JSON lines as they arrive."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.model_inputs import CTR_MODEL_INPUTS
from tests.support.environment import REPO_ROOT

DAYS = (dt.date(2026, 11, 1), dt.date(2026, 11, 2))
EXAMPLES_TABLE = CTR_MODEL_INPUTS.examples.table
INPUT_KEYS = tuple(f"features/{EXAMPLES_TABLE}/{day:%Y-%m-%d}.parquet" for day in DAYS)
# {object key: table}: what the trainer is told each input is.
INPUT_TABLES = {key: EXAMPLES_TABLE for key in INPUT_KEYS}
CODE_VERSION = "test-code-1"

# Tiny but real: every feature, dropout on (so RNG restore matters), several epochs.
TINY_CONFIG: dict[str, Any] = {
    "embedding_dim": 8,
    "hidden_sizes": [32, 16],
    "dropout": 0.2,
    "user_buckets": 512,
    "item_buckets": 256,
    "batch_size": 64,
    "total_steps": 120,
    "warmup_steps": 10,
    "checkpoint_every_steps": 25,
    "checkpoint_every_seconds": 3600.0,
    "keep_last": 3,
    "log_every_steps": 1,
    "seed": 11,
    "eval_fraction": 0.2,
    "model_inputs": CTR_MODEL_INPUTS.to_dict(),
}


@dataclass(frozen=True)
class Inputs:
    root: Path  # a LocalObjectStore root holding INPUT_KEYS
    versions: dict[str, str]


def trainer_args(
    inputs: Inputs,
    prefix: str,
    config: dict[str, Any],
    *,
    resume: bool = True,
    code_version: str = CODE_VERSION,
    store_args: list[str] | None = None,
) -> list[str]:
    args = store_args or ["--store-root", str(inputs.root)]
    for key in INPUT_KEYS:
        args += ["--input-key", f"{INPUT_TABLES[key]}={key}"]
    return [
        *args,
        "--checkpoint-prefix",
        prefix,
        "--config-json",
        json.dumps(config),
        "--input-data-versions-json",
        json.dumps(inputs.versions),
        "--code-version",
        code_version,
        "--resume" if resume else "--no-resume",
        "--device",
        "cpu",
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.pop("WORLD_SIZE", None)
    return env


@dataclass
class TrainerProcess:
    """A running trainer whose stdout JSON lines are read as they arrive."""

    proc: subprocess.Popen
    stderr_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    def read_until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """Block on stdout until an event satisfies `predicate`; None if stdout closed first."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            self.events.append(event)
            if predicate(event):
                return event
        return None

    def finish(self, timeout: float = 120) -> int:
        """Drain stdout and wait; `timeout` only guards the suite against a hung trainer."""
        self.read_until(lambda event: False)
        return self.proc.wait(timeout=timeout)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def summary(self) -> dict[str, Any]:
        summaries = [e for e in self.events if e["event"] == "summary"]
        assert len(summaries) == 1, (self.events[-5:], self.stderr[-3000:])
        return summaries[0]


def start_process(command: list[str], stderr_path: Path) -> TrainerProcess:
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )
    return TrainerProcess(proc=proc, stderr_path=stderr_path)
