"""Two torchrun "nodes" joined by c10d over 127.0.0.1, the way the Indexed Job runs them: one
node lost mid-training fails the whole job, the relaunched job resumes from the last
checkpoint, and the weights equal an uninterrupted two-node run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from resources.storage.object_store import LocalObjectStore
from resources.trainer.multinode import rendezvous_command
from scripts.training_scenarios import heartbeat_step, kill_process_tree, wait_for
from tests.support.environment import REPO_ROOT, free_port
from tests.support.trainer_process import TINY_CONFIG, trainer_args
from training.checkpoint import CheckpointManager

# Starts torchrun agents and their workers.
pytestmark = pytest.mark.slow

NODES = 2
CONFIG = {**TINY_CONFIG, "total_steps": 300, "checkpoint_every_steps": 20, "log_every_steps": 5}
# The node is lost once this step is reached: between two checkpoints (every 20 steps), so
# the relaunch really loses steps and really resumes mid-run ...
KILL_AFTER_STEP = 130
# ... and the surviving node must notice on its own: its collectives fail, torchrun does not
# restart (--max-restarts 0) and exits non-zero.
SURVIVOR_EXIT_S = 120.0


@dataclass
class Node:
    """One torchrun agent (a pod's main process) with its output in files."""

    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    def events(self) -> list[dict]:
        lines = self.stdout.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def tail(self) -> str:
        return self.stderr.read_text()[-3000:]


def _env() -> dict[str, str]:
    # No torchrun variables from an outer launcher: each agent sets its workers' own.
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": str(REPO_ROOT)}


def _start_job(inputs, prefix: str, out: Path, attempt: str) -> list[Node]:
    """Start NODES agents with the command every pod of the Indexed Job runs, pointed at a
    fresh rendezvous (new port and id per attempt, as a new Job has)."""
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for index in range(NODES):
        command = rendezvous_command(
            sys.executable,
            trainer_args(inputs, prefix, CONFIG),
            nodes=NODES,
            procs_per_node=1,
            endpoint=endpoint,
            rdzv_id=f"job-{attempt}",
            local_addr="127.0.0.1",
        )
        stdout, stderr = out / f"{attempt}-node{index}.out", out / f"{attempt}-node{index}.err"
        with stdout.open("w") as so, stderr.open("w") as se:
            proc = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=_env(),
                stdout=so,
                stderr=se,
            )
        nodes.append(Node(proc, stdout, stderr))
    return nodes


def _wait(nodes: list[Node], timeout: float = 300.0) -> list[int]:
    deadline = time.monotonic() + timeout
    return [node.proc.wait(timeout=max(1.0, deadline - time.monotonic())) for node in nodes]


def _summary(nodes: list[Node]) -> dict:
    [summary] = [e for node in nodes for e in node.events() if e["event"] == "summary"]
    return summary


def _weights(root: Path, prefix: str) -> dict:
    manager = CheckpointManager(LocalObjectStore(root), prefix)
    return manager.load_step(CONFIG["total_steps"], fingerprint=None).payloads["model.pt"]


@pytest.fixture
def jobs(tmp_path):
    started: list[Node] = []

    def start(*args) -> list[Node]:
        nodes = _start_job(*args)
        started.extend(nodes)
        return nodes

    yield start
    for node in started:  # only the agents this test started, and their workers, by pid
        if node.proc.poll() is None:
            kill_process_tree(node.proc.pid)
            node.proc.wait()


def test_a_lost_node_fails_the_job_and_the_relaunch_resumes_bit_identical(inputs, jobs, tmp_path):
    reference = jobs(inputs, "ckpt/reference", tmp_path, "reference")
    assert _wait(reference) == [0] * NODES, [node.tail() for node in reference]
    expected = _summary(reference)
    assert expected["world_size"] == NODES and expected["status"] == "completed"

    prefix = "ckpt/lost-node"
    store = LocalObjectStore(inputs.root)
    first = jobs(inputs, prefix, tmp_path, "attempt1")
    wait_for(
        lambda: heartbeat_step(store, prefix) >= KILL_AFTER_STEP,
        timeout=300,
        what=f"two-node job reaching step {KILL_AFTER_STEP}",
        interval=0.05,
    )
    # Node loss: the agent and its worker, frozen and then SIGKILLed together.
    lost, survivor = first[1], first[0]
    kill_process_tree(lost.proc.pid)
    lost.proc.wait()
    killed_at = heartbeat_step(store, prefix)
    assert killed_at < CONFIG["total_steps"], "the job ended before the node could be lost"
    exit_code = survivor.proc.wait(timeout=SURVIVOR_EXIT_S)
    assert exit_code != 0, survivor.tail()
    assert not [e for node in first for e in node.events() if e["event"] == "summary"]
    saved = CheckpointManager(store, prefix).published_steps()
    assert saved and max(saved) < killed_at

    # Dagster's retry: a new Job, both nodes relaunched, resuming from the last checkpoint.
    second = jobs(inputs, prefix, tmp_path, "attempt2")
    assert _wait(second) == [0] * NODES, [node.tail() for node in second]
    summary = _summary(second)
    print(f"node lost at step {killed_at}; resumed from step {summary['resumed_from_step']}")
    assert summary["status"] == "completed" and summary["world_size"] == NODES
    assert summary["resumed_from_step"] == max(saved)
    assert summary["steps"] == CONFIG["total_steps"]

    actual, reference_weights = (
        _weights(inputs.root, prefix),
        _weights(inputs.root, "ckpt/reference"),
    )
    assert actual.keys() == reference_weights.keys()
    for name, tensor in reference_weights.items():
        assert torch.equal(actual[name], tensor), f"weight {name} differs after the relaunch"
    assert summary["metrics"] == expected["metrics"]
