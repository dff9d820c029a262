"""The day's CTR model: trained on the gate-approved example window by the pure-torch trainer,
checkpointed so that a kill, a preemption or an OOM costs at most one checkpoint interval.

The checkpoint prefix is `checkpoints/model_checkpoint/<day>/<fingerprint>`, and the
fingerprint covers the training config, the content hash of every input partition and the
trainer's code. A retry of the same run therefore finds its own checkpoints and resumes; a
run with other settings or other data starts fresh under its own prefix.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.model.records import production_model, same_shape, write_candidate
from assets.model.training_dataset import ASSET as DATASET_ASSET
from assets.model.training_dataset import manifest_inputs
from assets.model.training_dataset import manifest_key as dataset_manifest_key
from assets.partitions import daily_partitions, training_partitions
from assets.publishing.gate_reports import PartitionNotPublished, read_published_with_lineage
from assets.publishing.keys import validated_partition_key
from resources.storage.object_store import ObjectNotFound, ObjectStore
from resources.storage.resource import ObjectStorage
from resources.trainer.launcher import TrainerLauncher
from training.config import ConfigError, TrainConfig, fingerprint

ASSET = "model_checkpoint"
# Exit codes of `python -m training` that no retry can fix (see training/cli.py).
NOT_RETRYABLE_EXIT_CODES = {2: "bad config or input data", 3: "checkpoint fingerprint mismatch"}
TRAINING_PACKAGE = Path(__file__).resolve().parent.parent / "training"


class ModelTrainingConfig(dg.Config):
    """Trainer settings (see training/config.py for the rest of TrainConfig's defaults)."""

    total_steps: int = 400
    batch_size: int = 512
    lr: float = 1e-2
    warmup_steps: int = 20
    embedding_dim: int = 4
    embedding_l2: float = Field(
        default=0.03, description="Pull of the user/item factors towards their starting point."
    )
    seed: int = 0
    warm_start: bool = Field(
        default=True,
        description="Start from the production model (the newest earlier day whose evaluation "
        "passed, same shape) instead of random weights.",
    )
    checkpoint_every_steps: int = Field(default=100, description="Save every N steps.")
    checkpoint_every_seconds: float = Field(default=600.0, description="...and every T seconds.")
    keep_last: int = Field(default=3, description="Checkpoints kept (>= 2).")
    log_every_steps: int = Field(default=25, description="Progress lines in the run's logs.")
    resume: bool = Field(default=True, description="Resume this fingerprint's checkpoints.")
    resume_fingerprint: str | None = Field(
        default=None,
        description="Require resuming this earlier run; refused if this run's fingerprint differs.",
    )

    def train_config(self) -> TrainConfig:
        fields = self.model_dump(exclude={"resume", "resume_fingerprint", "warm_start"})
        return TrainConfig.from_dict(fields)


def training_code_version() -> str:
    """Hash of the trainer's source: any change to the code gives a new fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(TRAINING_PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def checkpoint_prefix(partition: str, run_fingerprint: str) -> str:
    day = validated_partition_key(ASSET, partition, training_partitions)
    return f"checkpoints/{ASSET}/{day}/{run_fingerprint[:16]}"


def approved_inputs(store: ObjectStore, partition: str) -> dict[str, str]:
    """{object key: sha256} of the example partitions the training_dataset manifest names,
    after re-verifying every entry now (events snapshot and every feature table of every day):
    each must still pass its gates and still hold the bytes the manifest recorded."""
    manifest = read_manifest(store, partition)
    for entry in manifest["inputs"]:
        _, report = read_published_with_lineage(
            store, entry["asset"], entry["partition"], daily_partitions
        )
        if report.content_sha256 != entry["content_sha256"]:
            raise PartitionNotPublished(
                f"{entry['asset']} {entry['partition']} changed since "
                f"{dataset_manifest_key(partition)} was written. Re-materialize {DATASET_ASSET} "
                f"for {partition}."
            )
    return {entry["object_key"]: entry["content_sha256"] for entry in manifest_inputs(manifest)}


def read_manifest(store: ObjectStore, partition: str) -> dict:
    manifest_key = dataset_manifest_key(partition)
    try:
        return json.loads(store.get_bytes(manifest_key))
    except ObjectNotFound as err:
        raise PartitionNotPublished(
            f"No training set for {partition} ({manifest_key}). Materialize {DATASET_ASSET} "
            f"for {partition} first."
        ) from err


@dataclass(frozen=True)
class TrainingRun:
    """One training attempt for a day: its approved inputs, fingerprint, checkpoint prefix and
    the trainer's arguments (the asset and benchmarks/training.py launch exactly these)."""

    inputs: dict[str, str]
    code_version: str
    fingerprint: str
    prefix: str
    trainer_args: list[str]
    train_config: TrainConfig
    # The production model this run starts from (its candidate record), or None: from scratch.
    parent: dict | None


def warm_start_parent(store: ObjectStore, partition: str, train_config: TrainConfig) -> dict | None:
    """The production model for `partition` when its weights fit this config, else None."""
    parent = production_model(store, before=partition)
    if parent is None or not same_shape(parent["config"], train_config.to_dict()):
        return None
    return parent


def plan_training_run(
    storage: ObjectStorage, partition: str, config: ModelTrainingConfig
) -> TrainingRun:
    store = storage.open_store()
    inputs = approved_inputs(store, partition)
    train_config = config.train_config()
    code_version = training_code_version()
    parent = warm_start_parent(store, partition, train_config) if config.warm_start else None
    init_from = (
        {"step_key": parent["checkpoint_key"], "manifest_sha256": parent["manifest_sha256"]}
        if parent
        else None
    )
    run_fingerprint = fingerprint(train_config, inputs, code_version, init_from)
    prefix = checkpoint_prefix(partition, run_fingerprint)
    trainer_args = [
        *storage.trainer_args(),
        *(arg for key in sorted(inputs) for arg in ("--input-key", key)),
        "--checkpoint-prefix", prefix,
        "--config-json", json.dumps(train_config.to_dict()),
        "--input-data-versions-json", json.dumps(inputs),
        "--code-version", code_version,
        "--init-from-json", json.dumps(init_from or {}),
        "--resume" if config.resume else "--no-resume",
    ]  # fmt: skip
    return TrainingRun(
        inputs, code_version, run_fingerprint, prefix, trainer_args, train_config, parent
    )


def _number(value: float | None) -> dg.MetadataValue:
    """A float metadata value (plotted by the UI); NaN when the trainer reported none."""
    return dg.MetadataValue.float(float("nan") if value is None else float(value))


def _outcome(invocation: dg.PipesClientCompletedInvocation) -> dict:
    messages = [m for m in invocation.get_custom_messages() if "exit_code" in m]
    if not messages:
        raise RuntimeError("The trainer bridge ended without reporting the trainer's outcome")
    return messages[-1]


@dg.asset(
    name=ASSET,
    description="The day's CTR model, trained on the approved example window; resumable.",
    group_name="training",
    partitions_def=training_partitions,
    deps=[DATASET_ASSET],
    pool="gpu",
    # Each retry re-launches the trainer under the same fingerprint, so it resumes.
    retry_policy=dg.RetryPolicy(
        max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # On Kubernetes (k8s_job_executor / K8sRunLauncher) the step's Job never retries on its
    # own: a Kubernetes-level retry would bypass Dagster's bookkeeping (dagster issue #33755).
    op_tags={"dagster-k8s/config": {"job_spec_config": {"backoff_limit": 0}}},
    kinds={"pytorch"},
    tags={"layer": "training"},
)
def model_checkpoint(
    context: dg.AssetExecutionContext,
    config: ModelTrainingConfig,
    storage: ObjectStorage,
    trainer: TrainerLauncher,
) -> dg.MaterializeResult:
    partition = context.partition_key
    try:
        run = plan_training_run(storage, partition, config)
    except (PartitionNotPublished, ConfigError) as err:
        raise dg.Failure(f"{ASSET} {partition}: {err}", allow_retries=False) from err
    inputs, run_fingerprint, prefix = run.inputs, run.fingerprint, run.prefix
    if config.resume_fingerprint and config.resume_fingerprint != run_fingerprint[:16]:
        raise dg.Failure(
            f"{ASSET} {partition}: asked to resume run {config.resume_fingerprint}, but this "
            f"run's config, input data and code give fingerprint {run_fingerprint[:16]}. A "
            "checkpoint only resumes the run that wrote it: launch with that run's config, or "
            f"clear resume_fingerprint to train {run_fingerprint[:16]} from scratch.",
            allow_retries=False,
        )
    parent = run.parent["partition"] if run.parent else None
    context.log.info(
        f"attempt {context.retry_number + 1}: training {partition} on {len(inputs)} days, "
        f"fingerprint {run_fingerprint[:16]}, checkpoints under {prefix}, "
        + (f"warm start from the production model of {parent}" if parent else "from scratch")
    )
    outcome = _outcome(trainer.launch(context, run.trainer_args, env={}))
    summary, exit_code = outcome["summary"] or {}, outcome["exit_code"]
    if exit_code in NOT_RETRYABLE_EXIT_CODES:
        message = (outcome.get("error") or {}).get("message", "")
        raise dg.Failure(
            f"{ASSET} {partition}: {NOT_RETRYABLE_EXIT_CODES[exit_code]}: {message}",
            allow_retries=False,
        )
    if exit_code != 0 or summary.get("status") != "completed":
        # Killed, preempted or crashed: the RetryPolicy re-launches and the trainer resumes.
        raise RuntimeError(
            f"{ASSET} {partition}: trainer ended with exit code {exit_code} at step "
            f"{summary.get('steps', 'unknown')}; the retry resumes from the last checkpoint "
            f"under {prefix}."
        )
    metrics = summary.get("metrics") or {}
    resumed_from = summary.get("resumed_from_step")
    from training.checkpoint import MANIFEST_NAME  # torch: imported by runs, not at load time

    store = storage.open_store()
    manifest = store.get_bytes(f"{summary['checkpoint_key']}/{MANIFEST_NAME}")
    write_candidate(
        store,
        {
            "partition": partition,
            "fingerprint": run_fingerprint,
            "checkpoint_key": summary["checkpoint_key"],
            "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "config": run.train_config.to_dict(),
            "inputs": inputs,
            "warm_start_from": parent,
            "metrics": metrics,
            "run_id": context.run_id,
        },
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(run_fingerprint),
        metadata={
            "checkpoint_key": summary["checkpoint_key"],
            "checkpoint_manifest": dg.MetadataValue.path(summary["checkpoint_manifest_uri"]),
            "fingerprint": run_fingerprint,
            "code_version": run.code_version,
            "torch_version": summary["torch_version"],
            "device": summary["device"],
            "precision": summary["precision"],
            "image_digest": trainer.image_digest,
            "warm_start_from": parent or "none (random init)",
            "eval_auc": _number(metrics.get("eval_auc")),
            "eval_log_loss": _number(metrics.get("eval_log_loss")),
            "train_loss": _number(metrics.get("train_loss")),
            # Bookkeeping of the attempt, in one entry: the UI plots numbers, and these would
            # crowd out the model's metrics.
            "training_run": dg.MetadataValue.json(
                {
                    "attempt": context.retry_number + 1,
                    "steps": summary["steps"],
                    "resumed_from_step": resumed_from or 0,
                    "steps_lost": summary["steps_lost"],
                    "world_size": summary["world_size"],
                    "train_examples": metrics.get("train_examples", 0),
                }
            ),
            "checkpoint_blocking_s": dg.MetadataValue.float(summary["checkpoint_blocking_s"]),
            "train_loop_s": dg.MetadataValue.float(summary["train_loop_s"]),
            "input_data_versions": dg.MetadataValue.json(inputs),
        },
    )
