"""How often the next-day guard takes back a good promotion, and the smallest regression it
catches at the day's sample size, on the example's synthetic days.

Seeds the synthetic warehouse (2,000 impressions a day, seed 7), approves every day's events
and features through Dagster, then runs the daily loop in date order as the daily training
job does (training_dataset -> model_checkpoint -> model_evaluation, warm start from
production), one in-process run per day. Each day D whose candidate passed its evaluation is
"promoted" over the previous passing model, and the guard's own scoring and decision
(training.evaluate's unseen rows and checkpoint logits, training.paired_bootstrap,
assets.guard.decision with the asset's default config) judge it on every example of D+1:

- false rollbacks: good days (D's own model promoted) the guard would have rolled back; the
  acceptance bar is 0 over at least 30 consecutive days;
- power: D's model damaged on purpose, its logits multiplied by a temperature t > 1
  (over-confident: same ranking, worse log loss) or shifted by a bias b (miscalibrated), at
  several strengths; for each strength, the share of days rolled back and the median true
  log-loss increase on D+1's rows. The smallest strength detected on >= 90 % of the days is
  the smallest regression the guard catches at this sample size.

    python -m benchmarks.next_day_guard --judged-days 30

The last line is `ratio=<smallest log-loss increase detected with >= 90 % power / the good
models' median log loss on the same rows>` (the relative regression it catches; temperature).
"""

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np

from assets.guard.asset import day_input_keys
from assets.guard.decision import GuardConfig, decide
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import read_candidate, read_evaluation
from assets.model.training_dataset import training_dataset
from assets.partitions import TRAINING_WINDOW_DAYS, partition_range_tags
from benchmarks.features import QUIET_CONSOLE
from benchmarks.model_quality import PIPELINE
from resources.factory import build_resources
from resources.storage.object_store import LocalObjectStore
from resources.warehouse.backends import SqliteBackend
from scripts.synthetic_events import seed_warehouse
from training.evaluate import checkpoint_logits, unseen_rows
from training.metrics import log_loss
from training.paired_bootstrap import paired_difference

FIRST_DAY = dt.date(2026, 10, 1)
TRAINING = [training_dataset, model_checkpoint, model_evaluation]
TEMPERATURES = (1.1, 1.2, 1.3, 1.4, 1.6, 1.8, 2.0, 2.5)
BIASES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
POWER = 0.9


def _logits(store, candidate: dict, rows) -> np.ndarray:
    return checkpoint_logits(
        store,
        step_key=candidate["checkpoint_key"],
        manifest_sha256=candidate["manifest_sha256"],
        config=candidate["config"],
        rows=rows,
    )


def _regressed(labels, production, replaced, config: GuardConfig) -> bool:
    difference = paired_difference(
        labels,
        production,
        replaced,
        resamples=config.resamples,
        confidence=config.confidence,
        seed=config.seed,
    )
    return decide(difference.to_json(), config).regressed


def _smallest(name: str, strengths, detected: dict, increases: dict) -> float | None:
    found = None
    print(f"{name:12} detected_share  median_log_loss_increase")
    for strength in strengths:
        share = float(np.mean(detected[strength]))
        median = float(np.median(increases[strength]))
        print(f"{strength:<12} {share:14.2f}  {median:.4f}")
        if found is None and share >= POWER:
            found = median
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judged-days", type=int, default=30, help="good days judged (>= 1)")
    parser.add_argument("--impressions", type=int, default=2000, help="impressions a day")
    parser.add_argument("--steps", type=int, default=None, help="total_steps (default: asset's)")
    parser.add_argument(
        "--min-auc", type=float, default=None, help="evaluation floor (default: the asset's)"
    )
    args = parser.parse_args(argv)
    config = GuardConfig()
    # Day index 6 is the first trainable day; the first judged model is the second trained one.
    trained = args.judged_days + 1
    last = FIRST_DAY + dt.timedelta(days=TRAINING_WINDOW_DAYS - 1 + trained)
    training_config: dict = {"init_from": "production"}
    if args.steps is not None:
        training_config |= {"total_steps": args.steps, "warmup_steps": min(20, args.steps)}
    ops: dict = {"model_checkpoint": {"config": training_config}}
    if args.min_auc is not None:
        ops["model_evaluation"] = {"config": {"min_auc": args.min_auc}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seed_warehouse(
            SqliteBackend(str(root / "warehouse.sqlite")),
            FIRST_DAY,
            last,
            impressions=args.impressions,
        )
        resources = build_resources("local", local_root=root)
        store = LocalObjectStore(root / "object-store")
        tags = partition_range_tags(FIRST_DAY.isoformat(), last.isoformat())
        assert dg.materialize(
            PIPELINE, resources=resources, tags=tags, run_config=QUIET_CONSOLE
        ).success
        passing: list[dict] = []  # the promoted models, oldest first
        false_rollbacks, judged, production_losses = 0, 0, []
        detected: dict = {s: [] for s in (*TEMPERATURES, *BIASES)}
        increases: dict = {s: [] for s in (*TEMPERATURES, *BIASES)}
        print("day         rows  production_ll replaced_ll ll_diff  interval            verdict")
        started = time.monotonic()
        for index in range(TRAINING_WINDOW_DAYS - 1, TRAINING_WINDOW_DAYS - 1 + trained + 1):
            day = FIRST_DAY + dt.timedelta(days=index)
            partition = day.isoformat()
            selection = TRAINING if index < TRAINING_WINDOW_DAYS - 1 + trained else TRAINING[:1]
            result = dg.materialize(
                [*PIPELINE, *TRAINING],
                selection=[asset.key for asset in selection],
                partition_key=partition,
                resources=resources,
                run_config={
                    **QUIET_CONSOLE,
                    "ops": ops if selection == TRAINING else {},
                },
                raise_on_error=False,
            )
            # A candidate failing its evaluation is not promoted (the loop goes on without it).
            assert result.success or selection != TRAINING[:1], partition
            # Yesterday's promotion (and the model it replaced) judged on this day's rows.
            if (
                len(passing) >= 2
                and passing[-1]["partition"] == (day - dt.timedelta(1)).isoformat()
            ):
                production, replaced = passing[-1], passing[-2]
                rows = unseen_rows(store, day_input_keys(store, partition))
                labels = rows.labels
                ours, theirs = _logits(store, production, rows), _logits(store, replaced, rows)
                difference = paired_difference(
                    labels, ours, theirs,
                    resamples=config.resamples, confidence=config.confidence, seed=config.seed,
                )  # fmt: skip
                decision = decide(difference.to_json(), config)
                judged += 1
                false_rollbacks += decision.regressed
                base = log_loss(labels, ours)
                production_losses.append(base)
                loss = difference.log_loss
                print(
                    f"{partition}  {len(labels)}  {base:.4f}        {log_loss(labels, theirs):.4f}"
                    f"      {loss.estimate:+.4f} [{loss.lower:+.4f}, {loss.upper:+.4f}]  "
                    f"{'ROLLBACK' if decision.regressed else 'stays'}",
                    flush=True,
                )
                for strength in TEMPERATURES:
                    damaged = ours * strength
                    detected[strength].append(_regressed(labels, damaged, theirs, config))
                    increases[strength].append(log_loss(labels, damaged) - base)
                for strength in BIASES:
                    damaged = ours + strength
                    detected[strength].append(_regressed(labels, damaged, theirs, config))
                    increases[strength].append(log_loss(labels, damaged) - base)
            if index < TRAINING_WINDOW_DAYS - 1 + trained:
                candidate, verdict = (
                    read_candidate(store, partition),
                    read_evaluation(store, partition),
                )
                if verdict and verdict["passed"] and candidate["run_id"] == result.run_id:
                    passing.append(candidate)
        seconds = time.monotonic() - started
    rate = false_rollbacks / max(judged, 1)
    print(
        f"judged_days={judged} false_rollbacks={false_rollbacks} false_rollback_rate={rate:.3f} "
        f"seconds={seconds:.0f}"
    )
    print(
        f"guard: confidence {config.confidence}, {config.resamples} resamples, tolerances "
        f"log loss {config.max_log_loss_increase} / AUC {config.max_auc_drop}"
    )
    by_temperature = _smallest("temperature", TEMPERATURES, detected, increases)
    by_bias = _smallest("bias", BIASES, detected, increases)
    median_loss = float(np.median(production_losses)) if production_losses else float("nan")
    print(
        f"smallest_detected_log_loss_increase temperature={by_temperature} bias={by_bias} "
        f"(>= {POWER:.0%} of days; good models' median log loss {median_loss:.4f})"
    )
    ratio = (by_temperature / median_loss) if by_temperature is not None else float("nan")
    print(f"ratio={ratio:.4f}")


if __name__ == "__main__":
    main()
