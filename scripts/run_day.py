"""One day of the loop from the command line, on the embedded instance (DAGSTER_HOME) with the
resources `make dev` uses: the features of the days ending at DAY, then the day's training job
(training dataset, next-day guard, training, evaluation, promotion), in order, without the UI.

Prints one line per asset with its outcome and, for a refusal, the gate or check that refused
and why; the runs stay in the instance for the UI. Exit status: 0 when every asset
materialized, 1 when one was refused, failed or not run, 2 for bad arguments.

    make run-day DAY=2026-11-04 [WINDOW=7] [CONFIG=run_config.yaml]

WINDOW: how many days of features to (re)build, ending at DAY (default: the training window,
so a fresh instance has every day the training dataset needs). CONFIG: a YAML run config for
the training job (`ops: {model_checkpoint: {config: {...}}, model_evaluation: ...}`).
"""

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from assets.partitions import (
    TRAINING_WINDOW_DAYS,
    daily_partitions,
    partition_range_tags,
    training_partitions,
)
from definitions import build_definitions

FEATURES_JOB, TRAINING_JOB = "daily_features_job", "daily_training_job"
# The table below is the command's output (a refusal's reason included); every event stays in
# the instance for the UI.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
ROW_COUNT = "dagster/row_count"
# Metadata worth a word on a materialized asset's line, where an asset reports it.
SUMMARY_KEYS = ("outcome", "passed", "decided_by", "version", "promoted")
MATERIALIZED, REFUSED, FAILED, NOT_RUN = "materialized", "refused", "failed", "not run"


class UsageError(ValueError):
    """An argument the command cannot run with."""


@dataclass(frozen=True)
class AssetOutcome:
    """What one asset's step did in a run."""

    asset: str
    partitions: tuple[str, ...]
    outcome: str
    detail: str

    def line(self) -> str:
        days = self.partitions
        span = "" if not days else days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
        return f"{self.asset:<24} {span:<22} {self.outcome:<12} {self.detail}".rstrip()


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _summary(events: list) -> str:
    """A materialized asset's detail: its partitions, rows and the SUMMARY_KEYS it reported."""
    words = [f"{len(events)} partitions"] if len(events) > 1 else []
    if all(ROW_COUNT in e.materialization.metadata for e in events):
        words.append(f"rows={sum(_value(e.materialization.metadata[ROW_COUNT]) for e in events)}")
    metadata = events[-1].materialization.metadata
    words += [f"{key}={_value(metadata[key])}" for key in SUMMARY_KEYS if key in metadata]
    return ", ".join(words)


def _failure_message(event) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return _one_line(data.user_failure_data.description)
    return _one_line(data.error.message) if data.error else "the step failed"


def outcomes(result: dg.ExecuteInProcessResult) -> list[AssetOutcome]:
    """One outcome per asset step of the job, in the job's order. A refusal names each
    blocking check that failed (partition, check, its description), or, where no check failed,
    the step's failure message; a step that never ran says so."""
    order = [node.name for node in result.job_def.nodes_in_topological_order]
    materialized: dict[str, list] = {}
    for event in result.get_asset_materialization_events():
        materialized.setdefault(event.asset_key.to_user_string(), []).append(event)
    refusing: dict[str, list[str]] = {}
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            where = f" [{check.partition}]" if check.partition else ""
            refusing.setdefault(check.asset_key.to_user_string(), []).append(
                f"check {check.check_name}{where}: {_one_line(check.description or '')}"
            )
    failures = {e.step_key: e for e in result.get_step_failure_events()}
    lines = []
    for step in order:
        events = materialized.get(step, [])
        days = tuple(sorted({e.partition for e in events if e.partition}))
        checks = refusing.get(step, [])
        if step in failures or checks:
            failure = failures.get(step)
            user_refusal = failure is not None and failure.step_failure_data.user_failure_data
            outcome = REFUSED if checks or user_refusal else FAILED
            detail = " | ".join(checks) if checks else _failure_message(failure)
        elif events:
            outcome, detail = MATERIALIZED, _summary(events)
        else:
            stopped = [o.asset for o in lines if o.outcome != MATERIALIZED]
            outcome = NOT_RUN
            detail = f"{', '.join(stopped) or 'an upstream asset'} stopped this run"
        lines.append(AssetOutcome(step, days, outcome, detail))
    return lines


def _training_day(day: str) -> str:
    try:
        parsed = dt.date.fromisoformat(day)
    except ValueError as err:
        raise UsageError(f"DAY={day!r} is not a date: give YYYY-MM-DD") from err
    keys = training_partitions.get_partition_keys()
    if parsed.isoformat() not in keys:
        raise UsageError(
            f"DAY={day} is not a training day: the loop trains days {keys[0]} .. {keys[-1]} "
            "(a full window of data before it, and complete: yesterday at the latest)"
        )
    return parsed.isoformat()


def _window(day: str, window: int) -> tuple[str, str]:
    if window < 1:
        raise UsageError(f"WINDOW={window}: give at least 1 day of features")
    first = dt.date.fromisoformat(day) - dt.timedelta(days=window - 1)
    earliest = daily_partitions.get_first_partition_key()
    return max(first.isoformat(), earliest), day


def _run_config(path: str | None) -> dict:
    if not path:
        return dict(QUIET_CONSOLE)
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(f"CONFIG={path}: cannot read it as YAML ({err})") from err
    if not isinstance(loaded, Mapping):
        raise UsageError(f"CONFIG={path}: a run config is a mapping (ops: ...)")
    return {**QUIET_CONSOLE, **loaded}


def run_day(day: str, window: int, config_path: str | None, out=sys.stdout) -> int:
    """Run the features of [DAY - window + 1, DAY], then DAY's training job; print the table;
    the exit status."""
    day = _training_day(day)
    first, last = _window(day, window)
    training_config = _run_config(config_path)
    definitions = build_definitions("local")
    with dg.DagsterInstance.get() as instance:
        print(f"{'asset':<24} {'partition':<22} {'outcome':<12} detail", file=out)
        features = definitions.resolve_job_def(FEATURES_JOB).execute_in_process(
            instance=instance,
            run_config=QUIET_CONSOLE,
            tags=partition_range_tags(first, last),
            raise_on_error=False,
        )
        results = outcomes(features)
        if features.success:
            training = definitions.resolve_job_def(TRAINING_JOB).execute_in_process(
                instance=instance,
                partition_key=day,
                run_config=training_config,
                raise_on_error=False,
            )
            results += outcomes(training)
        else:
            results.append(
                AssetOutcome(TRAINING_JOB, (day,), NOT_RUN, "the day's features did not publish")
            )
        for outcome in results:
            print(outcome.line(), file=out)
    return 0 if all(o.outcome == MATERIALIZED for o in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--day", required=True, help="the training day, YYYY-MM-DD")
    parser.add_argument(
        "--window",
        type=int,
        default=TRAINING_WINDOW_DAYS,
        help=f"days of features to build, ending at --day (default {TRAINING_WINDOW_DAYS})",
    )
    parser.add_argument("--config", default=None, help="YAML run config of the training job")
    args = parser.parse_args(argv)
    try:
        return run_day(args.day, args.window, args.config)
    except UsageError as err:
        print(f"run-day: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
