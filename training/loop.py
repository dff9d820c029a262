"""The training loop: resume, train, checkpoint, stop cleanly on SIGTERM, evaluate.

Step boundaries are the only places where state is consistent (optimizer stepped, scheduler
stepped, sampler advanced), so every save and every stop happens there. With N processes the
stop/save decision is all-reduced first, so every rank takes the same branch at the same step.

Determinism (CPU): weights after step S depend only on (config, input bytes, S). A checkpoint
holds everything that feeds step S+1 (weights, AdamW moments, scheduler position, every RNG,
the sampler position), so killing at any instant and resuming from the newest valid
checkpoint replays exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from resources.storage.object_store import ObjectStore
from training import distributed, rng
from training.checkpoint import CheckpointManager, LoadedCheckpoint, load_step_key
from training.config import TrainConfig, fingerprint, resolve_input_versions
from training.data import Dataset, EncodedExamples, InputDataError, load_dataset
from training.distributed import DistContext
from training.metrics import log_loss, roc_auc
from training.model import build_model, loss_fn
from training.optim import build_optimizer, build_scheduler
from training.progress import Heartbeat, ProgressMeter, emit
from training.sampler import BatchSampler, DataPosition
from training.streaming import ExampleSource, StreamingBatches

logger = logging.getLogger(__name__)

# 128 + SIGTERM: what a shell reports for a process killed by SIGTERM, so supervisors that only
# look at the code still see "terminated", while our state was saved.
EXIT_PREEMPTED = 143
MODEL_FILE = "model.pt"
TRAINER_FILE = "trainer.pt"
_EVAL_CHUNK = 8192


@dataclass(frozen=True)
class TrainResult:
    status: str  # "completed" | "preempted"
    summary: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "completed" else EXIT_PREEMPTED


@dataclass(frozen=True)
class _Precision:
    name: str  # "fp32" | "bf16" | "fp16"
    autocast_dtype: torch.dtype | None
    use_scaler: bool  # fp16 only: bf16 has fp32's exponent range and needs no loss scaling


def _precision(device: torch.device) -> _Precision:
    if device.type != "cuda":
        return _Precision("fp32", None, False)
    if torch.cuda.is_bf16_supported():
        return _Precision("bf16", torch.bfloat16, False)
    return _Precision("fp16", torch.float16, True)  # pre-Ampere GPUs


def _configure_determinism(device: torch.device) -> None:
    # On CPU every op we use has a deterministic kernel, so any non-deterministic one is a bug
    # and should fail loudly. On CUDA a few kernels have none; there we only warn, because
    # bit-exact GPU resumes are not promised (see docs/training.md), only on CPU.
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    torch.backends.cudnn.benchmark = False


class _InMemoryBatches:
    """The loaded window's tensors and their sampler, behind the calls the loop makes of
    either data-loading mode (StreamingBatches is the other)."""

    def __init__(self, dataset: Dataset, sampler: BatchSampler, device: torch.device):
        self.dataset, self.sampler, self.device = dataset, sampler, device
        self.train = dataset.train.to(device)
        self.train_examples = len(dataset.train)
        self.batches_per_epoch = sampler.batches_per_epoch

    def next_batch(self) -> EncodedExamples:
        return self.train.take(self.sampler.next_indices().to(self.device))

    def position(self) -> DataPosition:
        return self.sampler.position()

    def restore(self, position: DataPosition) -> None:
        self.sampler.restore(position)

    def held_out(self) -> Iterator[EncodedExamples]:
        yield self.dataset.eval

    def close(self) -> None:
        """Nothing runs in the background here."""


def _training_data(
    store: ObjectStore, input_tables: Mapping[str, str], config: TrainConfig, ctx: DistContext
) -> _InMemoryBatches | StreamingBatches:
    if config.data_loading == "streaming":
        source = ExampleSource(store, input_tables, config)
        return StreamingBatches(source, config, ctx.rank, ctx.world_size)
    dataset = load_dataset(store, input_tables, config)
    try:
        sampler = BatchSampler(
            len(dataset.train), config.batch_size, config.seed, ctx.rank, ctx.world_size
        )
    except ValueError as err:  # too few examples: an input problem, not a crash
        raise InputDataError(str(err)) from err
    return _InMemoryBatches(dataset, sampler, ctx.device)


class _Trainer:
    """The state of one training process; `run()` drives it."""

    def __init__(
        self,
        ctx: DistContext,
        store: ObjectStore,
        input_tables: Mapping[str, str],
        checkpoint_prefix: str,
        config: TrainConfig,
        run_fingerprint: str,
        stop_event: threading.Event | None,
        init_from: Mapping[str, str] | None = None,
    ):
        self.ctx = ctx
        self.config = config
        self.fingerprint = run_fingerprint
        self.stop_event = stop_event
        self.precision = _precision(ctx.device)
        _configure_determinism(ctx.device)

        self.data = _training_data(store, input_tables, config, ctx)
        # The run's length: total_steps, or epochs over these rows (the same inputs and world
        # size give the same length, so a resumed run ends where the uninterrupted one would).
        self.total_steps = config.steps_for(self.data.batches_per_epoch)

        # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
        rng.seed_everything(config.seed)
        self.model = build_model(config)
        if init_from:
            # Before any resume: a resumed warm start needs the same anchors as the first try.
            loaded = load_step_key(store, init_from["step_key"], init_from["manifest_sha256"])
            try:
                self.model.warm_start(loaded.payloads[MODEL_FILE])
            except RuntimeError as err:  # another shape: a config change, not a crash
                raise InputDataError(
                    f"warm-start checkpoint {init_from['step_key']} does not fit this model "
                    f"({err}); train from scratch or start from a compatible model"
                ) from err
        self.model = self.model.to(ctx.device)
        self.train_model: torch.nn.Module = self.model
        if ctx.distributed:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = build_scheduler(self.optimizer, config.schedule_for(self.total_steps))
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.use_scaler else None
        # Then one stream per rank, so ranks draw different dropout masks.
        rng.seed_everything(config.seed + 1_000_003 * (ctx.rank + 1))

        self.checkpoints = CheckpointManager(store, checkpoint_prefix, config.keep_last)
        self.heartbeat = Heartbeat(store, checkpoint_prefix)
        self.step = 0
        self.last_checkpoint_step = 0
        # Seconds the training loop was held up by checkpointing (snapshot to CPU plus waiting
        # for the previous background write): what the background writer is there to shrink.
        self.checkpoint_blocking_s = 0.0

    # Resume ------------------------------------------------------------------------------

    def resume(self) -> tuple[int | None, int]:
        """Restore the newest valid checkpoint; returns (resumed_from_step, steps_lost)."""
        loaded = self.checkpoints.load_latest(self.fingerprint)
        reached = self.heartbeat.read(self.fingerprint)
        if loaded is not None:
            self._restore(loaded)
        # Every rank read storage on its own; make sure they all found the same step.
        lo, hi = _min_max(self.ctx, self.step)
        if lo != hi:
            raise RuntimeError(f"Ranks resumed from different steps ({lo}..{hi}); aborting")
        steps_lost = max(0, reached - self.step) if reached is not None else 0
        return (self.step if loaded is not None else None), steps_lost

    def _restore(self, loaded: LoadedCheckpoint) -> None:
        state = loaded.payloads[TRAINER_FILE]
        if state["step"] != loaded.step or state["fingerprint"] != self.fingerprint:
            raise RuntimeError(f"{loaded.key}: trainer state does not match its manifest")
        self.model.load_state_dict(loaded.payloads[MODEL_FILE])
        # Optimizer before scheduler: the scheduler's state refers to the restored LR.
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.data.restore(DataPosition.from_dict(state["data_position"]))
        per_rank = state["rng"]
        if len(per_rank) == self.ctx.world_size:
            rng.restore(per_rank[self.ctx.rank])
        else:
            # Different process count: no saved stream for this rank. Reseed from (seed, step,
            # rank) so the run stays reproducible from here on.
            logger.warning(
                "Checkpoint has RNG states for %d processes, this run has %d; reseeding",
                len(per_rank),
                self.ctx.world_size,
            )
            rng.seed_everything(self.config.seed + 7919 * loaded.step + self.ctx.rank)
        self.step = self.last_checkpoint_step = loaded.step

    # Saving ------------------------------------------------------------------------------

    def save(self, reason: str) -> None:
        started = time.monotonic()
        try:
            self._save(reason)
        finally:
            self.checkpoint_blocking_s += time.monotonic() - started

    def _save(self, reason: str) -> None:
        rng_states = distributed.gather_to_writer(self.ctx, rng.capture())  # collective
        if self.ctx.is_writer:
            trainer_state = {
                "step": self.step,
                "fingerprint": self.fingerprint,
                "config": self.config.to_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": rng_states,
                "data_position": self.data.position().to_dict(),
                "world_size": self.ctx.world_size,
            }
            metadata = {
                "config": self.config.to_dict(),
                "data_position": self.data.position().to_dict(),
                "world_size": self.ctx.world_size,
                "writer_rank": self.ctx.rank,
                "reason": reason,
                "torch_version": torch.__version__,
            }
            key = self.checkpoints.save(
                self.step,
                {MODEL_FILE: self.model.state_dict(), TRAINER_FILE: trainer_state},
                fingerprint=self.fingerprint,
                metadata=metadata,
            )
            emit("checkpoint", step=self.step, key=key, reason=reason)
        self.last_checkpoint_step = self.step

    # Training ----------------------------------------------------------------------------

    def _train_step(self) -> torch.Tensor:
        batch = self.data.next_batch().to(self.ctx.device)
        self.train_model.train()
        with torch.autocast(
            device_type=self.ctx.device.type,
            dtype=self.precision.autocast_dtype or torch.float32,
            enabled=self.precision.autocast_dtype is not None,
        ):
            logits = self.train_model(batch.categorical, batch.numeric)
        loss = loss_fn(logits, batch.label)
        if self.config.embedding_l2:
            loss = loss + self.config.embedding_l2 * self.model.penalty(batch.categorical)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return loss

    def run(self) -> tuple[str, ProgressMeter]:
        """Train to the run's length or until stopped; returns ("completed"|"preempted", meter)."""
        config, ctx = self.config, self.ctx
        meter = ProgressMeter(self.total_steps, config.batch_size * ctx.world_size, self.step)
        last_save_time = time.monotonic()
        while True:
            # The step boundary: decide together, then save and/or stop.
            pending = self.step > self.last_checkpoint_step
            stop, time_due = distributed.any_rank(
                ctx,
                self.stop_event is not None and self.stop_event.is_set(),
                ctx.is_writer
                and pending
                and time.monotonic() - last_save_time >= config.checkpoint_every_seconds,
            )
            finished = self.step >= self.total_steps
            interval_due = self.step % config.checkpoint_every_steps == 0
            reasons = {
                "sigterm": stop,
                "final": finished,
                "interval": interval_due,
                "time": time_due,
            }
            if pending and any(reasons.values()):
                self.save(next(name for name, due in reasons.items() if due))
                last_save_time = time.monotonic()
            if stop:
                return "preempted", meter
            if finished:
                return "completed", meter
            meter.add_loss(self._train_step())
            if ctx.is_writer and (
                self.step % config.log_every_steps == 0 or self.step == self.total_steps
            ):
                # Heartbeat first: any step a parent saw reported is then on record.
                self._write_heartbeat()
                emit("progress", **meter.report(self.step, self.scheduler.get_last_lr()[0]))

    def _write_heartbeat(self) -> None:
        try:
            self.heartbeat.write(self.step, self.fingerprint)
        except Exception as err:  # bookkeeping for steps_lost only: never worth a failed run
            logger.warning("Could not write the progress heartbeat at step %d: %s", self.step, err)

    # Evaluation --------------------------------------------------------------------------

    def evaluate(self, train_loss: float | None) -> dict[str, Any]:
        scored = [
            (_predict(self.model, chunk, self.ctx.device, self.precision), chunk.label.numpy())
            for chunk in self.data.held_out()
        ]
        logits = np.concatenate([s[0] for s in scored]) if scored else np.zeros(0, np.float32)
        labels = np.concatenate([s[1] for s in scored]) if scored else np.zeros(0, np.float32)
        return {
            "eval_auc": roc_auc(labels, logits),
            "eval_log_loss": log_loss(labels, logits),
            "eval_examples": len(labels),
            "eval_positive_rate": float(labels.mean()) if len(labels) else None,
            "train_examples": self.data.train_examples,
            "train_loss": train_loss,
        }


def _min_max(ctx: DistContext, value: int) -> tuple[int, int]:
    if not ctx.distributed:
        return value, value
    lo = torch.tensor([value], dtype=torch.int64, device=ctx.device)
    hi = lo.clone()
    torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
    return int(lo.item()), int(hi.item())


@torch.no_grad()
def _predict(
    model: torch.nn.Module, data: EncodedExamples, device: torch.device, precision: _Precision
) -> np.ndarray:
    model.eval()
    outputs = []
    for start in range(0, len(data), _EVAL_CHUNK):
        chunk = data.take(torch.arange(start, min(start + _EVAL_CHUNK, len(data)))).to(device)
        with torch.autocast(
            device_type=device.type,
            dtype=precision.autocast_dtype or torch.float32,
            enabled=precision.autocast_dtype is not None,
        ):
            outputs.append(model(chunk.categorical, chunk.numeric).float().cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros(0, dtype=np.float32)


def train(
    store: ObjectStore,
    *,
    input_tables: Mapping[str, str],
    checkpoint_prefix: str,
    config: TrainConfig,
    input_data_versions: Mapping[str, str],
    code_version: str,
    resume: bool = True,
    stop_event: threading.Event | None = None,
    device: str = "auto",
    init_from: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train (resuming by default) and return the summary that rank 0 also prints.

    `stop_event` is set by the SIGTERM handler (see training.cli); the loop then saves at the
    next step boundary, waits for the write and returns status "preempted".
    `input_tables` is {object key: the declared table it is a partition of} (the config's
    model_inputs says what each table is for).
    The fingerprint is `fingerprint(config, resolve_input_versions(input_tables,
    input_data_versions), code_version, init_from)`; it is in the summary. `init_from`
    ({"step_key", "manifest_sha256"}) warm-starts from another run's verified checkpoint.
    Raises FingerprintMismatch if the prefix holds another run's checkpoints, ConfigError for
    inconsistent versions.
    """
    started = time.monotonic()
    # cuBLAS reads this when its first handle is created; deterministic GEMMs need it.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    ctx = distributed.setup(device)
    try:
        versions = resolve_input_versions(input_tables, input_data_versions)
        run_fingerprint = fingerprint(config, versions, code_version, init_from)
        trainer = _Trainer(
            ctx,
            store,
            input_tables,
            checkpoint_prefix,
            config,
            run_fingerprint,
            stop_event,
            init_from,
        )
        resume_started = time.monotonic()
        resumed_from, steps_lost = trainer.resume() if resume else (None, 0)
        resume_s = time.monotonic() - resume_started
        logger.info(
            "rank %d/%d on %s (%s, %s): %d train examples, starting at step %d of %d",
            ctx.rank,
            ctx.world_size,
            ctx.device,
            trainer.precision.name,
            config.data_loading,
            trainer.data.train_examples,
            trainer.step,
            trainer.total_steps,
        )
        if ctx.is_writer and resume:
            emit("resumed", from_step=resumed_from, steps_lost=steps_lost)
        loop_started = time.monotonic()
        try:
            status, meter = trainer.run()
        finally:
            # Never leave a write half-done behind us, even when training raised.
            close_started = time.monotonic()
            trainer.checkpoints.close()
            trainer.data.close()
            trainer.checkpoint_blocking_s += time.monotonic() - close_started
        train_loop_s = time.monotonic() - loop_started
        # Rank 0 is the only writer; nobody exits before its checkpoint is published.
        distributed.barrier(ctx)
        metrics = (
            trainer.evaluate(meter.last_loss) if status == "completed" and ctx.is_writer else None
        )
        checkpoint_step = trainer.last_checkpoint_step
        has_checkpoint = checkpoint_step > 0  # step 0 is never saved: it is the seed's init
        summary = {
            "status": status,
            "steps": trainer.step,
            "total_steps": trainer.total_steps,
            "epochs": config.epochs,
            "batches_per_epoch": trainer.data.batches_per_epoch,
            "resumed_from_step": resumed_from,
            "steps_lost": steps_lost,
            "metrics": metrics,
            "checkpoint_key": trainer.checkpoints.step_key(checkpoint_step)
            if has_checkpoint
            else None,
            "checkpoint_manifest_uri": store.uri(trainer.checkpoints.manifest_key(checkpoint_step))
            if has_checkpoint
            else None,
            "fingerprint": run_fingerprint,
            "init_from": dict(init_from) if init_from else None,
            "device": str(ctx.device),
            "precision": trainer.precision.name,
            "world_size": ctx.world_size,
            "torch_version": torch.__version__,
            "wall_s": round(time.monotonic() - started, 3),
            "resume_s": round(resume_s, 4),
            "train_loop_s": round(train_loop_s, 4),
            "checkpoint_blocking_s": round(trainer.checkpoint_blocking_s, 4),
        }
        if ctx.is_writer:
            emit("summary", **summary)
        return TrainResult(status=status, summary=summary)
    finally:
        distributed.teardown(ctx)
