"""The process the model_checkpoint asset launches (a subprocess locally, the pod's command in
production): it starts the pure-torch trainer and relays its JSON events to Dagster Pipes.

The trainer stays Dagster-free; this bridge is the only code that speaks Pipes. It always
reports the trainer's exit code and summary as a custom message and exits 0 itself, so the
asset decides what a failure means (retry and resume, or stop); if the bridge itself dies
(pod evicted, OOM-killed), Pipes reports that and the asset's retry resumes as well.

It also watches for a preemption request (resources/trainer/preemption.py): a daily run needs
this run's GPU, so the trainer gets SIGTERM, saves at the next step boundary and exits 143.
"""

import json
import signal
import subprocess
import sys
import threading
from dataclasses import asdict
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

from resources.trainer.preemption import POLL_SECONDS, PreemptionRequest, read_request
from training.store_args import store_from_args


def describe_progress(event: dict[str, Any]) -> str:
    step, total = event["step"], event["total"]
    loss = event.get("loss")
    eta = event.get("eta_s")
    return (
        f"step {step}/{total} ({step / total:.0%}) | {event.get('samples_per_s') or 0:,.0f} "
        f"samples/s | loss {'n/a' if loss is None else f'{loss:.4f}'} | "
        f"ETA {'n/a' if eta is None else f'{eta:.0f}s'}"
    )


def relay(pipes: PipesContext, event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "progress":
        pipes.log.info(describe_progress(event))
    elif kind == "checkpoint":
        pipes.log.info(f"checkpoint at step {event['step']} ({event['reason']}): {event['key']}")
    elif kind == "resumed":
        if event.get("from_step") is None:
            pipes.log.info("no checkpoint for this fingerprint: training from step 0")
        else:
            pipes.log.info(
                f"resumed from step {event['from_step']} "
                f"({event.get('steps_lost', 0)} steps lost to the interruption)"
            )
    elif kind == "error":
        pipes.log.error(f"trainer error {event.get('error')}: {event.get('message')}")


class PreemptionWatch(threading.Thread):
    """Polls for this run's preemption request; on one, sends the trainer SIGTERM once."""

    def __init__(self, store_args: list[str], run_id: str, trainer: subprocess.Popen):
        super().__init__(name="preemption-watch", daemon=True)
        self.store = store_from_args(store_args)
        self.run_id = run_id
        self.trainer = trainer
        self.finished = threading.Event()
        self.request: PreemptionRequest | None = None

    def run(self) -> None:
        while not self.finished.wait(POLL_SECONDS):
            request = read_request(self.store, self.run_id)
            if request is not None:
                self.request = request
                self.trainer.send_signal(signal.SIGTERM)
                return


def main() -> int:
    with open_dagster_pipes() as pipes:
        command = pipes.get_extra("trainer_command")
        trainer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
        # Preemption arrives here as SIGTERM (pod deletion, spot reclaim): the trainer must get
        # it to save a checkpoint within the grace period.
        signal.signal(signal.SIGTERM, lambda *_: trainer.send_signal(signal.SIGTERM))
        watch = PreemptionWatch(pipes.get_extra("store_args"), pipes.run_id, trainer)
        watch.start()
        announced = False
        summary = error = None
        for line in trainer.stdout or ():
            try:
                event = json.loads(line)
            except ValueError:
                pipes.log.info(line.rstrip())
                continue
            if watch.request is not None and not announced:
                announced = True
                pipes.log.warning(
                    f"preempted for daily run {watch.request.for_run_id}: the trainer got "
                    "SIGTERM and stops after a checkpoint at the next step boundary"
                )
            relay(pipes, event)
            if event.get("event") == "summary":
                summary = event
            elif event.get("event") == "error":
                error = event
        exit_code = trainer.wait()
        watch.finished.set()
        watch.join()
        preempted = asdict(watch.request) if watch.request else None
        pipes.report_custom_message(
            {
                "exit_code": exit_code,
                "summary": summary,
                "error": error,
                "pid": trainer.pid,
                "preempted": preempted,
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
