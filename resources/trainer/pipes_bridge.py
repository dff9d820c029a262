"""The process the model_checkpoint asset launches (a subprocess locally, the pod's command in
production): it starts the pure-torch trainer and relays its JSON events to Dagster Pipes.

The trainer stays Dagster-free; this bridge is the only code that speaks Pipes. It always
reports the trainer's exit code and summary as a custom message and exits 0 itself, so the
asset decides what a failure means (retry and resume, or stop); if the bridge itself dies
(pod evicted, OOM-killed), Pipes reports that and the asset's retry resumes as well.
"""

import json
import signal
import subprocess
import sys
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes


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


def main() -> int:
    with open_dagster_pipes() as pipes:
        command = pipes.get_extra("trainer_command")
        trainer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
        # Preemption arrives here as SIGTERM (pod deletion, spot reclaim): the trainer must get
        # it to save a checkpoint within the grace period.
        signal.signal(signal.SIGTERM, lambda *_: trainer.send_signal(signal.SIGTERM))
        summary = error = None
        for line in trainer.stdout or ():
            try:
                event = json.loads(line)
            except ValueError:
                pipes.log.info(line.rstrip())
                continue
            relay(pipes, event)
            if event.get("event") == "summary":
                summary = event
            elif event.get("event") == "error":
                error = event
        exit_code = trainer.wait()
        pipes.report_custom_message(
            {"exit_code": exit_code, "summary": summary, "error": error, "pid": trainer.pid}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
