"""What the trainer tells the outside world while it runs.

* JSON lines on stdout, one object per line with an "event" field, parsed by the parent
  process (the Dagster asset): "progress", "checkpoint", "resumed", "summary", "error".
* A tiny heartbeat object `<checkpoint prefix>/progress.json` holding the highest step this
  fingerprint has reached. A SIGKILLed run cannot report how far it got; its successor reads
  the heartbeat to count the steps the kill cost (steps_lost).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any

import torch

from resources.storage.object_store import ObjectNotFound, ObjectStore

logger = logging.getLogger(__name__)

HEARTBEAT_NAME = "progress.json"


def _json_safe(value: Any) -> Any:
    # JSON has no NaN/inf; a diverged loss is reported as null rather than breaking the parser.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def emit(event: str, **fields: Any) -> dict[str, Any]:
    """Print one JSON line and flush (stdout is a pipe: block-buffered otherwise)."""
    line = _json_safe({"event": event, **fields})
    print(json.dumps(line, sort_keys=False, allow_nan=False), file=sys.stdout, flush=True)
    return line


class ProgressMeter:
    """Throughput, loss and ETA over the window since the previous report.

    Losses are summed on the device and read once per report, so a GPU step never waits for a
    host sync just to be logged.
    """

    def __init__(self, total_steps: int, samples_per_step: int, start_step: int):
        self.total_steps = total_steps
        self.samples_per_step = samples_per_step
        self._window_start = time.monotonic()
        self._window_step = start_step
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        self.last_loss: float | None = None

    def add_loss(self, loss: torch.Tensor) -> None:
        loss = loss.detach().float()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._loss_count += 1

    def report(self, step: int, lr: float) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = max(now - self._window_start, 1e-9)
        steps = step - self._window_step
        if self._loss_sum is not None and self._loss_count:
            self.last_loss = float((self._loss_sum / self._loss_count).item())
        fields = {
            "step": step,
            "total": self.total_steps,
            "samples_per_s": round(steps * self.samples_per_step / elapsed, 1),
            "loss": self.last_loss,
            "eta_s": round((self.total_steps - step) * elapsed / steps, 1) if steps else None,
            "lr": lr,
        }
        self._window_start, self._window_step = now, step
        self._loss_sum, self._loss_count = None, 0
        return fields


class Heartbeat:
    def __init__(self, store: ObjectStore, prefix: str):
        self.store = store
        self.key = f"{prefix.strip('/')}/{HEARTBEAT_NAME}"

    def write(self, step: int, fingerprint: str) -> None:
        body = json.dumps({"step": step, "fingerprint": fingerprint}).encode()
        self.store.put_bytes(self.key, body)

    def read(self, fingerprint: str) -> int | None:
        """Highest step recorded for `fingerprint`, or None (absent, unreadable, other run)."""
        try:
            data = json.loads(self.store.get_bytes(self.key))
            step = data["step"] if data.get("fingerprint") == fingerprint else None
            return step if isinstance(step, int) and step >= 0 else None
        except ObjectNotFound:
            return None
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            logger.warning("Ignoring unreadable heartbeat %s: %s", self.key, err)
            return None
