"""The day's CTR model: trained on the gate-approved example window by the pure-torch trainer,
checkpointed so that a kill, a preemption or an OOM costs at most one checkpoint interval.

The checkpoint prefix is `checkpoints/model_checkpoint/<day>/<fingerprint>`, and the
fingerprint covers the training config, the content hash of every input partition and the
trainer's code. A retry of the same run therefore finds its own checkpoints and resumes; a
run with other settings or other data starts fresh under its own prefix.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from assets.guard.records import GUARD_ASSET
from assets.model.environment_gate import environment_gate
from assets.model.records import read_candidate, resolve_production, same_shape, write_candidate
from assets.model.training_dataset import ASSET as DATASET_ASSET
from assets.model.training_dataset import declaration, model_input_tables, model_inputs
from assets.model.training_dataset import manifest_key as dataset_manifest_key
from assets.partitions import daily_partitions, training_partitions
from assets.publishing.gate_reports import PartitionNotPublished, read_published_with_lineage
from assets.publishing.keys import validated_partition_key
from resources.registry.registry import DEFAULT_MODEL, ModelRegistry
from resources.storage.object_store import ObjectNotFound, ObjectStore
from resources.storage.resource import ObjectStorage
from resources.trainer.launcher import TrainerLauncher
from resources.trainer.preemption import PREEMPTIONS_TAG, clear_request
from training.config import ConfigError, TrainConfig, fingerprint
from training.model_inputs import ModelInputs

ASSET = "model_checkpoint"
# Exit codes of `python -m training` that no retry can fix (see training/cli.py).
NOT_RETRYABLE_EXIT_CODES = {2: "bad config or input data", 3: "checkpoint fingerprint mismatch"}
# The trainer's exit code after SIGTERM and a saved checkpoint (training/loop.py).
EXIT_PREEMPTED = 143
# A killed, OOM-killed or crashed attempt is re-launched this often; preemptions are bounded by
# the gpu policy (resources/trainer/gpu_policy.py) and do not use these up.
CRASH_RETRIES = 3
# A preempted attempt asks for the gpu slot again after this long; the waiting daily step has
# the higher priority, so the slot goes there first.
PREEMPTED_RETRY_WAIT_S = 2.0
TRAINING_PACKAGE = Path(__file__).resolve().parent.parent / "training"


class ModelTrainingConfig(dg.Config):
    """Trainer settings (see training/config.py for the rest of TrainConfig's defaults)."""

    total_steps: int | None = Field(
        default=None,
        description="A fixed number of optimizer steps (tests, benchmarks, reproducing a run). "
        "Unset: the length follows the data, epochs passes over the window's training rows, at "
        "most max_steps.",
    )
    epochs: float = Field(
        default=16.0,
        description="Passes over the window's training rows when total_steps is unset: "
        "ceil(epochs x full batches per pass) steps (the example's window: 24 batches, 384 "
        "steps), so a window of another size is neither starved nor overtrained.",
    )
    max_steps: int = Field(
        default=20_000, description="The cap on the steps epochs asks for (a very large window)."
    )
    batch_size: int = 512
    lr: float = 1e-2
    warmup_steps: int = 20
    embedding_dim: int = 4
    embedding_l2: float = Field(
        default=0.03, description="Pull of the user/item factors towards their starting point."
    )
    weight_decay: float = Field(
        default=0.2,
        description="AdamW's decoupled weight decay. Without it a chain of warm-started days "
        "grows overconfident (benchmarks/model_quality.py: log loss 0.515 at 0.01, 0.420 at 0.2).",
    )
    seed: int = 0
    init_from: Literal["none", "previous_day", "production"] = Field(
        default="none",
        description="Starting weights. none: random (the window from scratch); previous_day: the "
        "newest verified checkpoint of D-1's model; production: the model the registry's "
        "production alias serves for D. A warm start without a usable parent starts cold and "
        "says so in the logs. The daily sensor's runs pass production.",
    )
    history_features: bool = Field(
        default=True,
        description="Feed each example its user's and item's history (user/item daily features "
        "of the window's days before the example's day).",
    )
    data_loading: Literal["in_memory", "streaming"] = Field(
        default="in_memory",
        description="How examples reach the trainer. in_memory: the whole window in tensors, "
        "permuted every epoch (memory grows with the window). streaming: the examples' parquet "
        "row groups read as it trains, shuffled within shuffle_buffer_rows (memory follows the "
        "buffer); it sees the rows in another order, so it trains other weights and has its "
        "own fingerprint.",
    )
    shuffle_buffer_rows: int = Field(
        default=1_048_576,
        description="Streaming only: rows shuffled together (at least one parquet row group).",
    )
    loader_workers: int = Field(
        default=0,
        description="Streaming only: DataLoader processes reading ahead per trainer process "
        "(0: read in the trainer).",
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
    allow_environment_drift: bool = Field(
        default=False,
        description="Train even though the installed packages differ from requirements.lock; "
        "the difference is then recorded on the model (the environment metadata entry).",
    )

    def train_config(self, model_inputs: ModelInputs) -> TrainConfig:
        """The trainer's config, reading what the day's manifest declares (`model_inputs`)."""
        fields = self.model_dump(
            exclude={
                "resume",
                "resume_fingerprint",
                "init_from",
                "allow_environment_drift",
                "total_steps",
                "epochs",
                "max_steps",
            }
        )
        if self.total_steps is not None:
            length = {"total_steps": self.total_steps, "epochs": 0.0}
        else:  # the trainer resolves the steps once it knows the window's rows
            length = {"total_steps": self.max_steps, "epochs": self.epochs}
        return TrainConfig.from_dict({**fields, **length, "model_inputs": model_inputs.to_dict()})


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
    """{object key: sha256} of the partitions the model reads (the examples and the history
    tables the training_dataset manifest names), after re-verifying every entry now (events
    snapshot and every feature table of every day): each must still pass its gates and still
    hold the bytes the manifest recorded."""
    manifest = approved_manifest(store, partition)
    # What the model reads: the examples and the history (model_inputs), so training and
    # every evaluation of the day pass the trainer the same partitions.
    return {entry["object_key"]: entry["content_sha256"] for entry in model_inputs(manifest)}


@dataclass(frozen=True)
class ApprovedReads:
    """What day D's model reads, re-verified: {object key: sha256}, {object key: table} and
    the model-input declaration the manifest carries."""

    versions: dict[str, str]
    tables: dict[str, str]
    model_inputs: ModelInputs


def approved_reads(store: ObjectStore, partition: str) -> ApprovedReads:
    """`approved_inputs` with each key's table and the manifest's declaration."""
    manifest = approved_manifest(store, partition)
    versions = {entry["object_key"]: entry["content_sha256"] for entry in model_inputs(manifest)}
    return ApprovedReads(versions, model_input_tables(manifest), declaration(manifest))


def approved_manifest(store: ObjectStore, partition: str) -> dict:
    """The day's training-set manifest, every entry re-verified now (see approved_inputs)."""
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
    return manifest


def read_manifest(store: ObjectStore, partition: str) -> dict:
    manifest_key = dataset_manifest_key(partition)
    try:
        return json.loads(store.get_bytes(manifest_key))
    except ObjectNotFound as err:
        raise PartitionNotPublished(
            f"No training set for {partition} ({manifest_key}). Materialize {DATASET_ASSET} "
            f"for {partition} first."
        ) from err


INIT_FROM_NONE, INIT_FROM_PREVIOUS_DAY, INIT_FROM_PRODUCTION = "none", "previous_day", "production"
# Day D's dependency on day D-1 of the same asset (the warm-start parent).
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


@dataclass(frozen=True)
class WarmStart:
    """Where a run's starting weights come from: `parent` ({day, checkpoint_key,
    manifest_sha256, fingerprint}) when it warm-starts, else None with `note` saying why."""

    mode: str
    parent: dict | None
    note: str

    @property
    def init_from(self) -> dict[str, str] | None:
        """The trainer's --init-from-json (part of the fingerprint)."""
        if self.parent is None:
            return None
        return {
            "step_key": self.parent["checkpoint_key"],
            "manifest_sha256": self.parent["manifest_sha256"],
        }

    @property
    def cold(self) -> bool:
        """A warm start was asked for and none was possible."""
        return self.parent is None and self.mode != INIT_FROM_NONE

    def describe(self) -> dict:
        """The `warm_start_from` metadata entry and candidate-record field."""
        if self.parent is None:
            return {"init_from": self.mode, "day": None, "cold_start": self.note}
        return {"init_from": self.mode, **self.parent}


@dataclass(frozen=True)
class TrainingRun:
    """One training attempt for a day: its approved inputs, fingerprint, checkpoint prefix and
    the trainer's arguments (the asset and benchmarks/training.py launch exactly these)."""

    inputs: dict[str, str]
    # {object key: table}: which declared table each input is a partition of.
    tables: dict[str, str]
    code_version: str
    fingerprint: str
    prefix: str
    trainer_args: list[str]
    train_config: TrainConfig
    # The model this run starts from (init_from), or why it starts from random weights.
    warm_start: WarmStart
    # Input partitions and hashes, parent, code version and config, in one JSON entry.
    lineage: dict

    @property
    def parent(self) -> dict | None:
        return self.warm_start.parent


def _unusable_parent(store: ObjectStore, record: dict, train_config: TrainConfig) -> str | None:
    """Why the model `record` names cannot seed a run of `train_config`, or None: its
    checkpoint verifies (manifest sha256 and every file) and every tensor has this model's
    shape."""
    if not same_shape(record.get("config") or {}, train_config.to_dict()):
        return "its config has other embedding/bucket/hidden sizes or model inputs"
    # torch: imported by runs, not at load time.
    from training.checkpoint import InitCheckpointError, load_step_key
    from training.loop import MODEL_FILE
    from training.model import build_model

    try:
        loaded = load_step_key(store, record["checkpoint_key"], record["manifest_sha256"])
    except (InitCheckpointError, ObjectNotFound) as err:
        return f"its checkpoint does not verify ({err})"
    state = loaded.payloads.get(MODEL_FILE) or {}
    expected = build_model(train_config).state_dict()
    misfits = sorted(
        name
        for name in set(expected) | set(state)
        if name not in state or name not in expected or state[name].shape != expected[name].shape
    )
    if misfits:
        return f"its weights do not fit this model ({', '.join(misfits[:4])})"
    return None


def warm_start_parent(
    store: ObjectStore,
    partition: str,
    train_config: TrainConfig,
    init_from: str = INIT_FROM_NONE,
) -> WarmStart:
    """The model day `partition` starts from under `init_from`, verified and shape-checked;
    a cold start (parent None) with the reason when there is none to use."""
    if init_from == INIT_FROM_NONE:
        return WarmStart(init_from, None, "init_from=none: trained from random weights")
    if init_from == INIT_FROM_PREVIOUS_DAY:
        day = (dt.date.fromisoformat(partition) - dt.timedelta(days=1)).isoformat()
        what = f"model of D-1 ({day})"
        if day < training_partitions.get_first_partition_key():
            return WarmStart(
                init_from, None, f"no {what}: it is before the first training day; cold start"
            )
        record = read_candidate(store, day)
        source = "its candidate record"
    elif init_from == INIT_FROM_PRODUCTION:
        production = resolve_production(ModelRegistry(store, DEFAULT_MODEL), before=partition)
        record, source = production.model, production.source
        day = record["partition"] if record else None
        what = f"production model for {partition}"
    else:
        raise ConfigError(f"init_from must be none, previous_day or production (got {init_from!r})")
    if record is None:
        return WarmStart(init_from, None, f"no {what} ({source}); cold start")
    reason = _unusable_parent(store, record, train_config)
    if reason is not None:
        return WarmStart(
            init_from,
            None,
            f"the {what}, {record['checkpoint_key']}, cannot be used: {reason}; cold start",
        )
    parent = {
        "day": day,
        "checkpoint_key": record["checkpoint_key"],
        "manifest_sha256": record["manifest_sha256"],
        "fingerprint": record.get("fingerprint"),
    }
    note = (
        f"warm start ({init_from}) from the {what}: {parent['checkpoint_key']} "
        f"(manifest sha256 {parent['manifest_sha256'][:12]})"
    )
    return WarmStart(init_from, parent, note)


def _lineage(
    store: ObjectStore,
    partition: str,
    warm: WarmStart,
    train_config: TrainConfig,
    code_version: str,
    run_fingerprint: str,
) -> dict:
    """Everything a day's model came from, in one document (the `lineage` metadata entry)."""
    key = dataset_manifest_key(partition)
    manifest_bytes = store.get_bytes(key)
    manifest = json.loads(manifest_bytes)
    verified: dict[str, dict[str, str]] = {}
    for entry in manifest["inputs"]:
        verified.setdefault(entry["asset"], {})[entry["partition"]] = entry["content_sha256"]
    read: dict[str, list[str]] = {}
    for entry in model_inputs(manifest):
        read.setdefault(entry["asset"], []).append(entry["partition"])
    return {
        "partition": partition,
        "training_dataset": {"manifest_key": key, "sha256": _sha256(manifest_bytes)},
        # Every partition verified for the window (asset -> day -> content sha256) ...
        "inputs": {asset: dict(sorted(days.items())) for asset, days in sorted(verified.items())},
        # ... and the ones the trainer reads (history features: the days before D only).
        "model_reads": read,
        "init_from": warm.mode,
        "parent": warm.parent,
        "cold_start": warm.note if warm.parent is None else None,
        "code_version": code_version,
        "fingerprint": run_fingerprint,
        "config": train_config.to_dict(),
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan_training_run(
    storage: ObjectStorage, partition: str, config: ModelTrainingConfig
) -> TrainingRun:
    store = storage.open_store()
    reads = approved_reads(store, partition)
    inputs = reads.versions
    train_config = config.train_config(reads.model_inputs)
    code_version = training_code_version()
    warm = warm_start_parent(store, partition, train_config, config.init_from)
    init_from = warm.init_from
    run_fingerprint = fingerprint(train_config, inputs, code_version, init_from)
    prefix = checkpoint_prefix(partition, run_fingerprint)
    trainer_args = [
        *storage.trainer_args(),
        *(arg for key in sorted(inputs) for arg in ("--input-key", f"{reads.tables[key]}={key}")),
        "--checkpoint-prefix", prefix,
        "--config-json", json.dumps(train_config.to_dict()),
        "--input-data-versions-json", json.dumps(inputs),
        "--code-version", code_version,
        "--init-from-json", json.dumps(init_from or {}),
        "--resume" if config.resume else "--no-resume",
    ]  # fmt: skip
    lineage = _lineage(store, partition, warm, train_config, code_version, run_fingerprint)
    return TrainingRun(
        inputs,
        reads.tables,
        code_version,
        run_fingerprint,
        prefix,
        trainer_args,
        train_config,
        warm,
        lineage,
    )


def _number(value: float | None) -> dg.MetadataValue:
    """A float metadata value (plotted by the UI); NaN when the trainer reported none."""
    return dg.MetadataValue.float(float("nan") if value is None else float(value))


def _checkpoint_step(summary: dict) -> int:
    key = summary.get("checkpoint_key")
    return int(key.rsplit("step-", 1)[1]) if key else 0


def _retry_interrupted(
    context: dg.AssetExecutionContext, prefix: str, outcome: dict, summary: dict
) -> dg.RetryRequested:
    """Preempted for a daily run, or killed/crashed: either way the retry resumes under the
    same fingerprint. Preemptions get a retry of their own, so they never eat the crash budget."""
    partition, steps = context.partition_key, summary.get("steps", 0)
    saved = _checkpoint_step(summary)
    preempted = outcome.get("preempted")
    if preempted and outcome["exit_code"] == EXIT_PREEMPTED:
        context.log.warning(
            f"{ASSET} {partition}: preempted for daily run {preempted['for_run_id']} at step "
            f"{steps}; checkpoint at step {saved}, {steps - saved} steps lost. The step waits "
            f"for the gpu pool again and resumes from step {saved}."
        )
        return dg.RetryRequested(
            max_retries=context.retry_number + 1, seconds_to_wait=PREEMPTED_RETRY_WAIT_S
        )
    run = context.instance.get_run_by_id(context.run.run_id)
    preemptions = int(run.tags.get(PREEMPTIONS_TAG, "0")) if run else 0
    crashes_so_far = context.retry_number - preemptions
    context.log.warning(
        f"{ASSET} {partition}: trainer ended with exit code {outcome['exit_code']} at step "
        f"{steps}; the retry resumes from the last checkpoint under {prefix} (step {saved})."
    )
    return dg.RetryRequested(
        max_retries=CRASH_RETRIES + preemptions, seconds_to_wait=2.0 * 2**crashes_so_far
    )


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
    deps=[
        DATASET_ASSET,
        # D-1's model comes before D's: a training backfill then runs in day order (the
        # backfill daemon launches a self-dependent asset's partitions oldest first, one run
        # at a time under multi_run(1)), which init_from previous_day needs.
        dg.AssetDep(ASSET, partition_mapping=PREVIOUS_DAY),
        # The next-day guard judges yesterday's promotion first: a day never warm-starts from,
        # or is evaluated against, a production model the day's own data has just rejected.
        GUARD_ASSET,
    ],
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
    # Only on the locked environment, unless the run config allows a drift, which the model
    # then records with its environment hash (assets/model/environment_gate.py).
    environment_gate(context, config.allow_environment_drift)
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
    parent = run.parent["day"] if run.parent else None
    examples_table = run.train_config.model_inputs.examples.table
    # A warm start that was asked for and found no usable parent is a warning: say why.
    (context.log.warning if run.warm_start.cold else context.log.info)(
        f"attempt {context.retry_number + 1}: training {partition} on "
        f"{len(run.lineage['model_reads'].get(examples_table, []))} days of examples, "
        f"fingerprint {run_fingerprint[:16]}, checkpoints under {prefix}; {run.warm_start.note}"
    )
    store = storage.open_store()
    # A preemption request an earlier attempt died before answering is not for this attempt.
    clear_request(store, context.run.run_id)
    outcome = _outcome(
        trainer.launch(context, run.trainer_args, env={}, store_args=storage.trainer_args())
    )
    clear_request(store, context.run.run_id)
    summary, exit_code = outcome["summary"] or {}, outcome["exit_code"]
    if exit_code in NOT_RETRYABLE_EXIT_CODES:
        message = (outcome.get("error") or {}).get("message", "")
        raise dg.Failure(
            f"{ASSET} {partition}: {NOT_RETRYABLE_EXIT_CODES[exit_code]}: {message}",
            allow_retries=False,
        )
    if exit_code != 0 or summary.get("status") != "completed":
        raise _retry_interrupted(context, prefix, outcome, summary) from RuntimeError(
            f"{ASSET} {partition}: trainer ended with exit code {exit_code} at step "
            f"{summary.get('steps', 'unknown')}"
        )
    metrics = summary.get("metrics") or {}
    resumed_from = summary.get("resumed_from_step")
    from training.checkpoint import MANIFEST_NAME  # torch: imported by runs, not at load time

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
            "input_tables": run.tables,
            # The parent's day (what the registry's version record reads) and its exact
            # checkpoint: key and manifest sha256 (both in the fingerprint).
            "warm_start_from": parent,
            "init_from": run.warm_start.mode,
            "parent": run.parent,
            "lineage": run.lineage,
            "metrics": metrics,
            "run_id": context.run.run_id,
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
            # {init_from, day, checkpoint_key, manifest_sha256, fingerprint}, or the cold
            # start's reason.
            "warm_start_from": dg.MetadataValue.json(run.warm_start.describe()),
            "eval_auc": _number(metrics.get("eval_auc")),
            "eval_log_loss": _number(metrics.get("eval_log_loss")),
            "train_loss": _number(metrics.get("train_loss")),
            # Bookkeeping of the attempt, in one entry: the UI plots numbers, and these would
            # crowd out the model's metrics.
            "training_run": dg.MetadataValue.json(
                {
                    "attempt": context.retry_number + 1,
                    "steps": summary["steps"],
                    "epochs": run.train_config.epochs,
                    "resumed_from_step": resumed_from or 0,
                    "steps_lost": summary["steps_lost"],
                    "world_size": summary["world_size"],
                    "train_examples": metrics.get("train_examples", 0),
                }
            ),
            "checkpoint_blocking_s": dg.MetadataValue.float(summary["checkpoint_blocking_s"]),
            "train_loop_s": dg.MetadataValue.float(summary["train_loop_s"]),
            "input_data_versions": dg.MetadataValue.json(inputs),
            # Where this model came from, in one place: input partitions and hashes, parent,
            # code version, config (and the image and torch that trained it).
            "lineage": dg.MetadataValue.json(
                {
                    **run.lineage,
                    "image_digest": trainer.image_digest,
                    "torch_version": summary["torch_version"],
                }
            ),
        },
    )
