"""The real Dagster processes for end-to-end tests: dagster-webserver and dagster-daemon on an
embedded instance, driven through the same GraphQL endpoint the UI uses."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import dagster as dg

from resources.paths import PROJECT_ROOT as REPO_ROOT

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
  }
}
"""

BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status }
    ... on PythonError { message }
  }
}
"""


SCHEDULE_DRY_RUN = """
mutation($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult {
        runRequests { runKey tags { key value } runConfigYaml }
        skipReason
        error { message }
      }
    }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

# What the queued run coordinator logs once in each of its iterations while a run is queued:
# either it sorts the queue and checks the limits, or every run slot is taken. Counting these
# counts its passes over the queue, whatever the machine's speed.
COORDINATOR_ITERATION_MARKERS = (
    "Priority sorting and checking tag concurrency limits for queued runs.",
    "runs are currently in progress. Maximum is",
)

LOCATION = "ml_training_template"
# How long the webserver may take to answer (it loads the code location, torch included,
# before it listens): a bound on a hang, not on speed, so it allows for a machine whose cores
# other work keeps busy.
WEBSERVER_START_PATIENCE_S = 600
REPOSITORY = "__repository__"
# The project's code location, as both processes load it.
WORKSPACE = ("-w", str(REPO_ROOT / "workspace.yaml"))


class DagsterProcesses:
    """Starts webserver + daemon with `dagster_home` as DAGSTER_HOME (its dagster.yaml must
    exist) and `env` added to their environment; stops both on exit. With `daemon=False` the
    daemon waits for `start_daemon()`: what is launched before it (backfills, say) is all there
    at its first iteration."""

    def __init__(self, dagster_home: Path, env: dict[str, str], log_dir: Path, daemon: bool = True):
        self.dagster_home = dagster_home
        self.port = free_port()
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(dagster_home)}
        self.log_dir = log_dir
        self.with_daemon = daemon
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "DagsterProcesses":
        self._start(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                *WORKSPACE,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
        )
        if self.with_daemon:
            self.start_daemon()
        self._wait_for_webserver(timeout=WEBSERVER_START_PATIENCE_S)
        return self

    def start_daemon(self) -> None:
        # JSON lines: each entry's timestamp to the microsecond (the default text format has
        # whole seconds), so the coordinator's passes can be placed among run events.
        self._start(
            "daemon",
            [str(BIN / "dagster-daemon"), "run", *WORKSPACE, "--log-format", "json"],
        )

    def _start(self, name: str, command: list[str]) -> None:
        # The child writes to its own copy of the descriptor: ours can close at once.
        with open(self.log_dir / f"{name}.log", "w") as log:
            self.processes.append(
                subprocess.Popen(
                    command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
                )
            )

    def __exit__(self, *exc_info) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-4000:]}" for path in self.log_dir.glob("*.log")
        )

    def daemon_log(self) -> list[dict]:
        """The daemon's JSON log entries so far (lines that are not JSON, such as a code
        server's output, are left out), each with its timestamp as epoch seconds in `at`."""
        entries = []
        for line in (self.log_dir / "daemon.log").read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "timestamp" in entry:
                stamp = entry["timestamp"].replace("Z", "+00:00")
                entries.append({**entry, "at": datetime.fromisoformat(stamp).timestamp()})
        return entries

    def coordinator_iterations(self, after: float, until: float) -> int:
        """How many passes over the queue the run coordinator began logging in (after, until]
        (epoch seconds, as run events' timestamps are)."""
        return sum(
            1
            for entry in self.daemon_log()
            if entry.get("logger") == "dagster.daemon.QueuedRunCoordinatorDaemon"
            and any(marker in entry.get("event", "") for marker in COORDINATOR_ITERATION_MARKERS)
            and after < entry["at"] <= until
        )

    def _wait_for_webserver(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a Dagster process exited early:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/server_info", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise TimeoutError(f"dagster-webserver did not answer in {timeout}s:\n{self.logs()}")

    def graphql(self, query: str, variables: dict) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def launch_asset_backfill(
        self,
        asset_keys: list[str],
        partitions: list[str],
        run_config: dict | None = None,
        **tags,
    ) -> str:
        """The mutation the UI sends from an asset's 'Materialize' > backfill dialog (with the
        dialog's launchpad config when given)."""
        params = {
            "assetSelection": [{"path": [key]} for key in asset_keys],
            "partitionNames": partitions,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
            **({"runConfigData": run_config} if run_config else {}),
        }
        result = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {result}")
        return result["backfillId"]

    def wait_for_backfill(self, backfill_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
            if status.get("status") not in (None, "REQUESTED", "CANCELING"):
                return status["status"]
            time.sleep(1)
        raise TimeoutError(f"backfill {backfill_id} still running after {timeout}s:\n{self.logs()}")

    def launch_run(self, job: str, tags: dict[str, str], run_config: dict | None = None) -> str:
        """The launchpad's 'Launch run' (or a sensor's run request): returns the run id."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": job,
            },
            "runConfigData": run_config or {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        launched = self.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"run not launched: {launched}")
        return launched["run"]["runId"]

    def fire_schedule_tick(self, schedule: str, job: str, timestamp: float) -> str:
        """What the UI's 'Test schedule' then 'Launch run' does: evaluate the schedule for a
        tick and submit its run request. Returns the run id (queued)."""
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "scheduleName": schedule,
        }
        tick = self.graphql(SCHEDULE_DRY_RUN, {"selector": selector, "timestamp": timestamp})
        evaluation = tick["scheduleDryRun"]["evaluationResult"]
        [request] = evaluation["runRequests"]
        return self.launch_run(job, {tag["key"]: tag["value"] for tag in request["tags"]})


def embedded_home(path: Path) -> Path:
    """A DAGSTER_HOME holding the project's embedded dagster.yaml, its storage created.

    The storage is created here, once: webserver, daemon and code server starting together on a
    fresh SQLite instance race to create and stamp it (seen: "Version table 'alembic_version'
    has more than one head present", and the code location failed to load).
    """
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "deployments" / "local" / "dagster.yaml", path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(path)) as instance:
        instance.get_runs(limit=1)
    return path
