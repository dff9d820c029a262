"""Kueue admission of the trainer's Jobs, and how a waiting Job meets the `gpu` pool.

Every trainer Job is created suspended, labelled with a LocalQueue and a priority class
(deployments/k8s/kueue/). Kueue unsuspends it when the GPUs of all its pods fit the quota, so a
job across nodes starts all at once or not at all. Until then the Job has no pod and holds no
GPU, while its Dagster step does hold a `gpu` pool slot: if the preemption sensor asks that
step to yield (a daily run waits for the pool), there is no trainer yet to checkpoint, so the
launcher deletes the Job and asks Dagster for a retry, which hands the slot over at once.

Kueue may also evict an admitted Job (a higher-priority Job needs the quota, or the cohort
reclaims what was borrowed): it suspends the Job again, the pods get SIGTERM, the trainer saves
a checkpoint and exits. The launcher then counts it as a preemption on the run (the tag the
retry budget and the preemption sensor read) and the step's retry resumes from the checkpoint.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
# Set by the Job controller on each pod of an Indexed Job (Kubernetes >= 1.21).
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
# A pod waiting for one of these will not start by itself (dagster-k8s's pod client gives up on
# the same ones): fail the attempt now rather than at the Job's deadline.
FATAL_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class Admission:
    """Where a trainer Job queues: Kueue's LocalQueue and priority class, or no Kueue at all
    (queue None: the Job starts unsuspended, for the default scheduler)."""

    queue: str | None
    priority_class: str | None

    @property
    def labels(self) -> dict[str, str]:
        if self.queue is None:
            return {}
        labels = {QUEUE_LABEL: self.queue}
        if self.priority_class:
            labels[PRIORITY_LABEL] = self.priority_class
        return labels

    @property
    def suspend(self) -> bool:
        return self.queue is not None


class JobPhase(enum.Enum):
    WAITING = "waiting for admission"
    ADMITTED = "admitted"
    EVICTED = "evicted"
    FAILED = "failed"
    SUCCEEDED = "succeeded"


def _condition(job: Any, kind: str) -> Any:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type == kind and condition.status == "True":
            return condition
    return None


def job_phase(job: Any, was_admitted: bool) -> JobPhase:
    """What a trainer Job (a V1Job as read from the API) is doing. A suspended Job is waiting
    for admission until it has once run; suspended after that, Kueue evicted it."""
    if _condition(job, "Failed"):
        return JobPhase.FAILED
    if _condition(job, "Complete"):
        return JobPhase.SUCCEEDED
    if job.spec.suspend:
        return JobPhase.EVICTED if was_admitted else JobPhase.WAITING
    return JobPhase.ADMITTED


def failure_reason(job: Any) -> str:
    condition = _condition(job, "Failed")
    return f"{condition.reason}: {condition.message}" if condition else "unknown"


class PreemptedWhileQueued(Exception):
    """The step was asked to give its gpu slot up while its Job waited for admission."""


@dataclass
class AdmissionWatch:
    """Polls one trainer Job until pod 0 runs, saying once that it waits for admission and
    giving way to a preemption request while it does (it holds no GPU to checkpoint)."""

    batch: Any
    core: Any
    name: str
    namespace: str
    pod_selector: str
    admission: Admission
    preemption_requested: Callable[[], bool]
    log: Any
    poll_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    was_admitted: bool = False

    def phase(self) -> JobPhase:
        job = self.batch.read_namespaced_job(self.name, self.namespace)
        phase = job_phase(job, self.was_admitted)
        if phase is JobPhase.FAILED:
            raise RuntimeError(
                f"trainer Job {self.namespace}/{self.name} failed: {failure_reason(job)}"
            )
        return phase

    def first_pod(self, timeout_s: float) -> str:
        """The name of pod 0 once it runs (or already ended), so its log can be followed.
        Time spent waiting for admission does not count against `timeout_s`."""
        deadline = self.clock() + timeout_s
        said_waiting = False
        while True:
            phase = self.phase()
            if phase in (JobPhase.WAITING, JobPhase.EVICTED):
                if self.preemption_requested():
                    raise PreemptedWhileQueued(
                        f"trainer Job {self.namespace}/{self.name} was not admitted yet (it holds "
                        "no GPU) and a daily run waits for this step's gpu slot: the Job is "
                        "deleted and the step retries, queueing again behind the daily run."
                    )
                if not said_waiting:
                    self.log.info(
                        f"trainer Job {self.namespace}/{self.name} {phase.value}: waiting for "
                        f"Kueue to admit it (queue {self.admission.queue}, priority "
                        f"{self.admission.priority_class}); it holds no GPU until then. "
                        f"`kubectl get workloads -n {self.namespace}` shows its place and why."
                    )
                    said_waiting = True
                deadline = self.clock() + timeout_s
            else:
                if not self.was_admitted:
                    self.was_admitted = True
                    if said_waiting:
                        self.log.info(f"trainer Job {self.namespace}/{self.name} admitted")
                said_waiting = False
                pod = self._pod_zero()
                if pod is not None:
                    return pod
                if self.clock() > deadline:
                    raise RuntimeError(
                        f"trainer Job {self.namespace}/{self.name}: pod 0 did not start within "
                        f"{timeout_s:.0f}s of admission (`kubectl describe job` names the reason)"
                    )
            self.sleep(self.poll_s)

    def _pod_zero(self) -> str | None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.pod_selector)
        for pod in pods.items:
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting if status.state else None
                if waiting is not None and waiting.reason in FATAL_WAITING_REASONS:
                    raise RuntimeError(
                        f"trainer Job {self.namespace}/{self.name}: pod {pod.metadata.name} cannot "
                        f"start: {waiting.reason}: {waiting.message} (check TRAINER_IMAGE and the "
                        "image pull secret)"
                    )
            index = (pod.metadata.annotations or {}).get(COMPLETION_INDEX)
            if index == "0" and pod.status.phase in ("Running", "Succeeded", "Failed"):
                return pod.metadata.name
        return None

    def evicted(self) -> bool:
        """Whether Kueue suspended the Job again after it ran (read once pod 0 has ended)."""
        try:
            return self.phase() is JobPhase.EVICTED
        except RuntimeError:
            return False
