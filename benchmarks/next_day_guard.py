"""How often the next-day guard takes back a good promotion, and the smallest regression it
catches at the day's sample size, on the example's synthetic days.

Seeds the synthetic warehouse (2,000 impressions a day, seed 7) and approves every day's events
and features through Dagster. Then the daily loop trains `--models` days in date order as the
daily training job does (training_dataset -> model_checkpoint -> model_evaluation, warm start
from production), one in-process run per day; each candidate that passed its evaluation is
"promoted" over the previous passing one. With the guard's own scoring and decision
(training.evaluate's unseen rows and checkpoint logits, training.paired_bootstrap,
assets.guard.decision at the asset's default config):

- false rollbacks: each good promotion (a passing model over the one before it) is judged on
  each of the `--days-per-pair` days after its own, every example of the day, as the guard of
  that day would; none may roll back (the acceptance bar: 0 over at least 30 judged days).
  In a young chain each day's model is clearly better than the one before, the easy case, so
  the hard one is measured too: the last day's model retrained with another seed (same
  data, same parent, equal quality) promoted over the original and judged on the same days
  (`twin` rows; a false rollback there counts the same);
- power: on the same days, the promoted model against a damaged copy of itself promoted over
  it, its logits multiplied by a temperature t > 1 (over-confident: same ranking, worse log
  loss) or shifted by a bias b (miscalibrated), at several strengths. For each strength: the
  share of days rolled back, and the median log-loss increase of the copy over the original
  on the day's rows. The smallest strength caught on >= 90 % of the days gives the smallest
  regression the guard catches at this sample size.

    python -m benchmarks.next_day_guard --models 4 --days-per-pair 10

The last line is `ratio=<smallest log-loss increase caught with >= 90 % power (temperature) /
the promoted models' median log loss on the same rows>` (the relative regression it catches).
"""

import argparse
import datetime as dt
import itertools
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np

from assets.guard.asset import day_inputs
from assets.guard.decision import GuardConfig, decide
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import read_candidate, read_evaluation
from assets.model.training_dataset import manifest_key, training_dataset
from assets.partitions import TRAINING_WINDOW_DAYS
from benchmarks.features import QUIET_CONSOLE
from benchmarks.model_quality import PIPELINE, publish_features
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
    parser.add_argument("--models", type=int, default=4, help="daily models trained (>= 2)")
    parser.add_argument(
        "--days-per-pair", type=int, default=10, help="days each promotion is judged on"
    )
    parser.add_argument("--impressions", type=int, default=2000, help="impressions a day")
    parser.add_argument("--steps", type=int, default=None, help="total_steps (default: asset's)")
    parser.add_argument(
        "--min-auc", type=float, default=None, help="evaluation floor (default: the asset's)"
    )
    args = parser.parse_args(argv)
    config = GuardConfig()
    first_model = FIRST_DAY + dt.timedelta(days=TRAINING_WINDOW_DAYS - 1)
    model_days = [first_model + dt.timedelta(days=n) for n in range(args.models)]
    last = model_days[-1] + dt.timedelta(days=args.days_per_pair)
    training_config: dict = {"init_from": "production"}
    if args.steps is not None:
        training_config |= {"total_steps": args.steps, "warmup_steps": min(20, args.steps)}
    ops: dict = {"model_checkpoint": {"config": training_config}}
    if args.min_auc is not None:
        ops["model_evaluation"] = {"config": {"min_auc": args.min_auc}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        resources, store = publish_features(root, FIRST_DAY, last, args.impressions)

        def run(partition: str, selection: list, run_ops: dict):
            return dg.materialize(
                [*PIPELINE, *TRAINING],
                selection=[asset.key for asset in selection],
                partition_key=partition,
                resources=resources,
                run_config={**QUIET_CONSOLE, "ops": run_ops},
                raise_on_error=False,
            )

        passing: list[dict] = []  # the promoted models, oldest first
        for day in model_days:
            partition = day.isoformat()
            result = run(partition, TRAINING, ops)  # a failed evaluation: not promoted
            candidate, verdict = read_candidate(store, partition), read_evaluation(store, partition)
            passed = bool(verdict and verdict["passed"] and candidate["run_id"] == result.run_id)
            print(f"model {partition}: evaluation {'passed' if passed else 'failed'}", flush=True)
            if passed:
                passing.append(candidate)
        pairs = list(itertools.pairwise(passing))
        if passing:
            # The hard good day: an equal-quality twin of the last model (another seed).
            twin_ops = {"model_checkpoint": {"config": {**training_config, "seed": 1}}}
            original = passing[-1]
            result = run(original["partition"], TRAINING[:2], twin_ops)
            twin = read_candidate(store, original["partition"])
            if result.success and twin["manifest_sha256"] != original["manifest_sha256"]:
                pairs.append((original, {**twin, "twin": True}))
        judged_days = sorted(
            {
                dt.date.fromisoformat(p["partition"]) + dt.timedelta(days=n)
                for _, p in pairs
                for n in range(1, args.days_per_pair + 1)
            }
        )
        for day in judged_days:
            if not store.exists(manifest_key(day.isoformat())):  # the day's verified window
                assert run(day.isoformat(), TRAINING[:1], {}).success, day
        false_rollbacks, judged, production_losses = 0, 0, []
        detected: dict = {s: [] for s in (*TEMPERATURES, *BIASES)}
        increases: dict = {s: [] for s in (*TEMPERATURES, *BIASES)}
        print(
            "promoted    replaced    judged_on   rows  production_ll replaced_ll ll_diff  "
            "interval            verdict   (* the equal-quality twin)"
        )
        for replaced, production in pairs:
            promoted_on = dt.date.fromisoformat(production["partition"])
            for n in range(1, args.days_per_pair + 1):
                partition = (promoted_on + dt.timedelta(days=n)).isoformat()
                rows = unseen_rows(store, *day_inputs(store, partition))
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
                    f"{production['partition']}{'*' if production.get('twin') else ' '} "
                    f"{replaced['partition']}  {partition}  "
                    f"{len(labels)}  {base:.4f}        {log_loss(labels, theirs):.4f}      "
                    f"{loss.estimate:+.4f} [{loss.lower:+.4f}, {loss.upper:+.4f}]  "
                    f"{'ROLLBACK' if decision.regressed else 'stays'}",
                    flush=True,
                )
                for strength in TEMPERATURES:
                    damaged = ours * strength
                    detected[strength].append(_regressed(labels, damaged, ours, config))
                    increases[strength].append(log_loss(labels, damaged) - base)
                for strength in BIASES:
                    damaged = ours + strength
                    detected[strength].append(_regressed(labels, damaged, ours, config))
                    increases[strength].append(log_loss(labels, damaged) - base)
    seconds = time.monotonic() - started
    rate = false_rollbacks / max(judged, 1)
    print(
        f"judged_days={judged} promotions={len(pairs)} "
        f"false_rollbacks={false_rollbacks} false_rollback_rate={rate:.3f} seconds={seconds:.0f}"
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
        f"(>= {POWER:.0%} of days; promoted models' median log loss {median_loss:.4f})"
    )
    ratio = (by_temperature / median_loss) if by_temperature is not None else float("nan")
    print(f"ratio={ratio:.4f}")


if __name__ == "__main__":
    main()
