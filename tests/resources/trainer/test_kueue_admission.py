"""How the trainer's Jobs meet Kueue, through the launcher's real `launch` in real Dagster runs.

There is no cluster here: the Kubernetes API is a small scripted stand-in (the calls the launcher
makes, nothing else) that plays a Job through Kueue's states: created suspended, waiting for
admission, unsuspended (admitted), pod 0 running and writing the bridge's Pipes messages to its
log, and suspended again (Kueue's eviction). What the launcher submits is also validated against
Kubernetes' schema. The runs, their retries, the run tags and the preemption requests are real.
"""

import json
from dataclasses import dataclass, field

import dagster as dg
import kubernetes
import pytest
from dagster_pipes import PIPES_PROTOCOL_VERSION, PIPES_PROTOCOL_VERSION_FIELD, decode_param
from kubernetes.client import (
    V1ContainerState,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1Job,
    V1JobCondition,
    V1JobStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodList,
    V1PodStatus,
)

from assets.model.model_checkpoint import _retry_interrupted
from resources.storage.object_store import LocalObjectStore
from resources.trainer import multinode
from resources.trainer.admission import (
    COMPLETION_INDEX,
    PRIORITY_LABEL,
    QUEUE_LABEL,
    JobPhase,
    job_phase,
)
from resources.trainer.k8s_launcher import K8sTrainerLauncher
from resources.trainer.preemption import PREEMPTIONS_TAG, read_request, request_preemption
from sensors.schedules import BACKFILL_TAG, DAILY_RUN_TAGS
from tests.support.gpu_inventory import INVENTORY
from tests.support.kubernetes_schema import manifest, validated

DAY = "2026-12-01"
DAYS = dg.StaticPartitionsDefinition([DAY])
IMAGE = "registry.example/ml-template@sha256:" + "f" * 64
COMPLETED = {"exit_code": 0, "summary": {"status": "completed", "steps": 10}}
# What the bridge reports when the pod got SIGTERM: the trainer saved at step 60 and exited.
SIGTERMED = {
    "exit_code": 143,
    "summary": {"status": "interrupted", "steps": 64, "checkpoint_key": "ckpt/step-000060"},
    "preempted": None,
}


def _pipes_line(second: int, method: str, params: dict) -> bytes:
    """One line of pod 0's log as the API streams it: `<timestamp> <Pipes message>`."""
    message = {PIPES_PROTOCOL_VERSION_FIELD: PIPES_PROTOCOL_VERSION, "method": method}
    line = json.dumps({**message, "params": params})
    return f"2026-12-05T00:00:{second:02d}.000000Z {line}\n".encode()


@dataclass
class Attempt:
    """One Job's life: the states successive reads of it return, and what pod 0 logs."""

    states: list[str]
    outcome: dict


@dataclass
class ScriptedCluster:
    """The Kubernetes API calls the launcher makes, answering from a script per Job."""

    attempts: list[Attempt]
    created: list[dict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    pods_started: list[str] = field(default_factory=list)
    state: dict[str, str] = field(default_factory=dict)

    def _attempt(self, name: str) -> Attempt:
        return self.attempts[[job["metadata"]["name"] for job in self.created].index(name)]

    # BatchV1Api
    def create_namespaced_job(self, namespace, body):
        self.created.append(validated(manifest(body)))
        self.state[body.metadata.name] = "created"
        return V1Job(metadata=V1ObjectMeta(name=body.metadata.name, uid="uid-1"))

    def read_namespaced_job(self, name, namespace):
        states = self._attempt(name).states
        state = states.pop(0) if len(states) > 1 else states[0]
        self.state[name] = state
        conditions = {
            "complete": [V1JobCondition(type="Complete", status="True")],
            "failed": [V1JobCondition(type="Failed", status="True", reason="X", message="y")],
        }.get(state)
        return V1Job(
            metadata=V1ObjectMeta(name=name),
            spec=kubernetes.client.V1JobSpec(
                template=kubernetes.client.V1PodTemplateSpec(),
                suspend=state in ("queued", "evicted"),
            ),
            status=V1JobStatus(conditions=conditions),
        )

    def delete_namespaced_job(self, name, namespace, propagation_policy):
        self.deleted.append(name)

    # CoreV1Api
    def create_namespaced_service(self, namespace, body):
        return body

    def list_namespaced_pod(self, namespace, label_selector):
        name = label_selector.split("=", 1)[1]
        if self.state.get(name) == "image-pull-backoff":
            waiting = V1ContainerStateWaiting(reason="ImagePullBackOff", message="not found")
            status = V1ContainerStatus(
                name="trainer", image=IMAGE, image_id="", ready=False, restart_count=0,
                state=V1ContainerState(waiting=waiting),
            )  # fmt: skip
            pod = V1Pod(
                metadata=V1ObjectMeta(name=f"{name}-0-abcde", annotations={COMPLETION_INDEX: "0"}),
                status=V1PodStatus(phase="Pending", container_statuses=[status]),
            )
            return V1PodList(items=[pod])
        if self.state.get(name) not in ("running", "complete"):
            return V1PodList(items=[])
        self.pods_started.append(name)
        pod = V1Pod(
            metadata=V1ObjectMeta(name=f"{name}-0-abcde", annotations={COMPLETION_INDEX: "0"}),
            status=V1PodStatus(phase="Running"),
        )
        return V1PodList(items=[pod])

    def read_namespaced_pod_log(self, pod_name, namespace, **kwargs):
        outcome = self._attempt(pod_name.rsplit("-0-", 1)[0]).outcome
        return [
            _pipes_line(1, "opened", {"extras": {}}),
            _pipes_line(2, "report_custom_message", {"payload": outcome}),
            _pipes_line(3, "closed", {}),
        ]


@pytest.fixture
def cluster(monkeypatch):
    def install(*attempts: Attempt) -> ScriptedCluster:
        fake = ScriptedCluster(list(attempts))
        monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda: None)
        monkeypatch.setattr(kubernetes.client, "BatchV1Api", lambda: fake)
        monkeypatch.setattr(kubernetes.client, "CoreV1Api", lambda: fake)
        monkeypatch.setattr(multinode, "POLL_S", 0.0)
        return fake

    return install


def _train(tmp_path, tags, *, gpus=2, request_before_first_launch=False):
    """A run whose one step launches the trainer as the training asset does and, like it,
    turns an interrupted attempt into a retry that resumes from the checkpoint."""
    store_args = ["--store-root", str(tmp_path / "store")]

    @dg.asset(partitions_def=DAYS)
    def trains(context: dg.AssetExecutionContext, trainer: K8sTrainerLauncher):
        store = LocalObjectStore(str(tmp_path / "store"))
        if request_before_first_launch and context.retry_number == 0:
            request_preemption(store, context.run.run_id, "the-daily-run", "a daily run waits")
        outcome = trainer.launch(context, ["--steps", "10"], env={}, store_args=store_args)
        [message] = [m for m in outcome.get_custom_messages() if "exit_code" in m]
        if message["exit_code"] != 0:
            raise _retry_interrupted(context, "ckpt", message, message["summary"])
        return dg.MaterializeResult(metadata={"attempt": context.retry_number + 1})

    launcher = K8sTrainerLauncher(image=IMAGE, gpus=gpus, inventory=INVENTORY)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [trains], resources={"trainer": launcher}, tags=tags, instance=instance, partition_key=DAY
    )
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    return result, messages, instance


def test_jobs_are_created_suspended_with_the_runs_queue_and_priority(cluster, tmp_path):
    fake = cluster(Attempt(["queued", "queued", "running", "complete"], COMPLETED))
    result, messages, _ = _train(tmp_path, DAILY_RUN_TAGS)
    assert result.success
    [job] = fake.created
    # On the Job itself, where Kueue reads them, after dagster-k8s built the pod.
    assert job["metadata"]["labels"][QUEUE_LABEL] == "ml-training"
    assert job["metadata"]["labels"][PRIORITY_LABEL] == "ml-training-daily"
    assert job["spec"]["suspend"] is True
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # Reported as waiting once, holding no GPU, then admitted; the Job is removed at the end.
    waiting = [m for m in messages if "waiting for Kueue to admit it" in m]
    assert len(waiting) == 1 and "holds no GPU" in waiting[0]
    assert messages.index(waiting[0]) < next(
        i for i, m in enumerate(messages) if m.endswith(" admitted")
    )
    assert fake.deleted == [job["metadata"]["name"]]


@pytest.mark.parametrize(
    ("tags", "priority"),
    [({BACKFILL_TAG: "abcdefgh"}, "ml-training-backfill"), ({}, "ml-training-backfill")],
)
def test_backfills_and_reruns_queue_below_the_daily_run(cluster, tmp_path, tags, priority):
    fake = cluster(Attempt(["running", "complete"], COMPLETED))
    assert _train(tmp_path, tags)[0].success
    assert fake.created[0]["metadata"]["labels"][PRIORITY_LABEL] == priority


def test_a_job_across_nodes_is_admitted_whole(cluster, tmp_path):
    fake = cluster(Attempt(["queued", "running", "complete"], COMPLETED))
    assert _train(tmp_path, DAILY_RUN_TAGS, gpus=16)[0].success
    [job] = fake.created
    # One workload of 2 whole nodes: Kueue admits both pods or neither.
    assert job["spec"]["suspend"] is True
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 2
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_a_queued_job_gives_its_gpu_slot_up_at_once_when_a_daily_run_needs_it(cluster, tmp_path):
    # The preemption sensor asks this backfill step to yield its gpu slot while its Job still
    # waits for admission: no trainer runs to checkpoint, so the Job goes and the step retries.
    fake = cluster(
        Attempt(["queued"], COMPLETED), Attempt(["queued", "running", "complete"], COMPLETED)
    )
    result, messages, _ = _train(
        tmp_path, {BACKFILL_TAG: "abcdefgh"}, request_before_first_launch=True
    )
    assert result.success
    first, retry = (job["metadata"]["name"] for job in fake.created)
    assert first.endswith("-a0") and retry.endswith("-a1")
    # The first Job never ran a pod and was deleted; the retry queued again and trained.
    assert first not in fake.pods_started and retry in fake.pods_started
    assert fake.deleted == [first, retry]
    assert any("was not admitted yet (it holds no GPU)" in m for m in messages)
    assert len(result.get_step_success_events()) == 1
    assert [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    # The request was answered: the next poll of the sensor sees none.
    store = LocalObjectStore(str(tmp_path / "store"))
    assert read_request(store, result.run_id) is None


def test_a_job_evicted_by_kueue_resumes_from_its_checkpoint_as_a_preemption(cluster, tmp_path):
    # Admitted, pod 0 runs; Kueue evicts (suspends) it: the pod's trainer gets SIGTERM, saves,
    # exits 143. The launcher counts a preemption; the retry resumes and finishes.
    fake = cluster(
        Attempt(["running", "evicted"], SIGTERMED),
        Attempt(["queued", "running", "complete"], COMPLETED),
    )
    result, messages, instance = _train(tmp_path, {BACKFILL_TAG: "abcdefgh"})
    assert result.success
    assert len(fake.created) == 2
    [materialization] = result.get_asset_materialization_events()
    assert materialization.materialization.metadata["attempt"].value == 2
    # Counted as a preemption: the retry budget for crashes is untouched.
    assert instance.get_run_by_id(result.run_id).tags[PREEMPTIONS_TAG] == "1"
    assert any("evicted by Kueue" in m and "resumes from it" in m for m in messages)
    assert any("retry resumes from the last checkpoint" in m for m in messages)


def test_an_image_that_cannot_be_pulled_fails_the_attempt_at_once(cluster, tmp_path):
    fake = cluster(Attempt(["queued", "image-pull-backoff"], COMPLETED))

    @dg.asset
    def trains(context: dg.AssetExecutionContext, trainer: K8sTrainerLauncher):
        trainer.launch(context, [], env={}, store_args=["--store-root", str(tmp_path)])
        return dg.MaterializeResult()

    launcher = K8sTrainerLauncher(image=IMAGE, inventory=INVENTORY)
    result = dg.materialize([trains], resources={"trainer": launcher}, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.event_specific_data.error.to_string()
    assert "cannot start: ImagePullBackOff: not found" in message
    # The Job goes with the failed attempt.
    assert fake.deleted == [fake.created[0]["metadata"]["name"]]


def test_job_phases_from_the_jobs_own_status():
    def job(suspend, condition=None):
        conditions = [V1JobCondition(type=condition, status="True")] if condition else None
        return V1Job(
            spec=kubernetes.client.V1JobSpec(
                template=kubernetes.client.V1PodTemplateSpec(), suspend=suspend
            ),
            status=V1JobStatus(conditions=conditions),
        )

    assert job_phase(job(True), was_admitted=False) is JobPhase.WAITING
    assert job_phase(job(False), was_admitted=False) is JobPhase.ADMITTED
    assert job_phase(job(True), was_admitted=True) is JobPhase.EVICTED
    assert job_phase(job(False, "Failed"), was_admitted=True) is JobPhase.FAILED
    assert job_phase(job(False, "Complete"), was_admitted=True) is JobPhase.SUCCEEDED


def test_without_kueue_jobs_start_at_once(cluster, tmp_path):
    fake = cluster(Attempt(["running", "complete"], COMPLETED))

    @dg.asset
    def trains(context: dg.AssetExecutionContext, trainer: K8sTrainerLauncher):
        trainer.launch(context, [], env={}, store_args=["--store-root", str(tmp_path)])
        return dg.MaterializeResult()

    launcher = K8sTrainerLauncher(image=IMAGE, inventory=INVENTORY, kueue_queue=None)
    assert dg.materialize([trains], resources={"trainer": launcher}).success
    [job] = fake.created
    assert job["spec"]["suspend"] is False
    assert not {QUEUE_LABEL, PRIORITY_LABEL} & set(job["metadata"]["labels"])


@pytest.mark.parametrize(
    ("gpus", "pods", "per_pod", "nproc_flag"),
    [
        (1, 1, 1, None),
        (4, 1, 4, "--nproc_per_node=4"),
        (8, 1, 8, "--nproc_per_node=8"),
        (24, 3, 8, "--nproc-per-node=8"),
    ],
)
def test_pods_gpu_requests_and_nproc_per_node_come_from_the_one_shape(
    cluster, tmp_path, gpus, pods, per_pod, nproc_flag
):
    fake = cluster(Attempt(["running", "complete"], COMPLETED))
    assert _train(tmp_path, DAILY_RUN_TAGS, gpus=gpus)[0].success
    [job] = fake.created
    assert job["spec"]["parallelism"] == pods
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(per_pod)
    # The command the bridge runs, as the pod receives it (Pipes context in its env).
    env = {e["name"]: e.get("value") for e in container["env"]}
    context = decode_param(env["DAGSTER_PIPES_CONTEXT"])["data"]
    command = context["extras"]["trainer_command"]
    if nproc_flag is None:
        assert "torch.distributed.run" not in command
    else:
        assert nproc_flag in command
        assert (f"--nnodes={pods}" in command) == (pods > 1)
